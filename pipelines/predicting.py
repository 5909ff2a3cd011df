"""`cvops predict`: classify one image with the published iteration and route it as the Function App would.

The target may be a local file (sent as bytes), an http(s) URL (the service fetches it), or ``az://container/blob``
(sent as a short-lived read-only SAS URL). ``store=False`` uses the *no store* calls, which also have the higher rate
limit on S0, and keeps the image out of the project's prediction history.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cvops.errors import ConfigurationError
from functions.policy import Policy, decide, quarantine
from pipelines.service import Service
from pipelines.sources import ImageSource, SourceImage
from pipelines.spec import SOURCE_SCHEME, SourceSpec


def moderator(api: str, endpoint: str, key: str | None) -> Callable[[bytes], Any]:
    """One image's moderation with ``api`` (``computer-vision`` or ``content-safety``), as the Function App moderates
    (functions/moderation.py: the same client, limits, retries); no key: the signed-in identity."""
    from cvops.retry import RetryPolicy
    from functions import moderation as moderation_api

    client = moderation_api.build_client(api, endpoint, key or None)
    return lambda data: moderation_api.moderate(api, client, data=data, pacer=None, what=f"moderate with {api}",
                                                policy=RetryPolicy())


def predict(service: Service, project_id: str, publish_name: str, target: str, *, store: bool = True,
            policy: Policy, moderate: Callable[[bytes], Any] | None = None) -> dict[str, Any]:
    """Classify ``target`` and route it with ``policy`` through ``functions.policy.decide``, the Function App's own
    decision (with ``moderate``, a :func:`moderator`, also its moderation scores or severities). Each prediction keeps
    its threshold and whether it passes; ``passing`` is the tags decide() accepted at their threshold,
    ``outcome``/``tags``/``reasons`` its decision."""
    image_bytes: Callable[[], bytes] | None = None
    if target.startswith(("http://", "https://")):
        url = target
    elif target.startswith(SOURCE_SCHEME):
        container, _, name = target[len(SOURCE_SCHEME):].partition("/")
        if not name:
            raise ConfigurationError(f"{target} names no blob", hint="write az://<container>/<path/to/image>")
        # A missing container or blob is the user's typo (exit 2), not the service's "could not read the URL" (exit 3).
        service.blob_service.get_blob_client(container, name).get_blob_properties()
        source = ImageSource(SourceSpec("blob", container=container), lambda: service.blob_service)
        url = source.sas_url(SourceImage(name, (), target), minutes=15)
        image_bytes = lambda: service.blob_service.get_blob_client(container, name).download_blob().readall()  # noqa: E731
    else:
        url = None
    if url is not None:
        call: Callable[[Any], Any] = (
            (lambda c: c.classify_image_url(project_id, publish_name, url)) if store
            else (lambda c: c.classify_image_url_with_no_store(project_id, publish_name, url)))
    else:
        path = Path(target)
        if path.is_dir():
            raise ConfigurationError(f"{target} is a directory; predict classifies one image",
                                     hint="give an image file, an http(s) URL or az://container/blob "
                                          "(to check a labelled folder, use cvops evaluate --holdout)")
        if not path.is_file():
            raise ConfigurationError(f"image {target} does not exist",
                                     hint="give a file path, an http(s) URL or az://container/blob")
        data = path.read_bytes()
        image_bytes = lambda: data  # noqa: E731
        call = ((lambda c: c.classify_image(project_id, publish_name, data)) if store
                else (lambda c: c.classify_image_with_no_store(project_id, publish_name, data)))
    result = service.prediction_call(f"classify {target} with {publish_name!r}", call)
    scores = sorted(((p.tag_name, p.probability) for p in result.predictions), key=lambda p: (-p[1], p[0]))
    moderation = None
    if moderate is not None:
        if image_bytes is None:
            raise ConfigurationError(f"{target}: moderation needs the image's bytes, and an http(s) URL is fetched by "
                                     "the prediction service, not here", setting="target",
                                     hint="download the image and predict the file, or use az://container/blob")
        moderation = moderate(image_bytes())
    if moderation is not None and not hasattr(moderation, "scores"):  # functions.vision.ImageRefused
        decision = quarantine(f"refused_by_{moderation.service}", f"{moderation.code or 'error'}: {moderation.message}")
    else:
        decision = decide(policy, scores, moderation.scores if moderation is not None else None)
    passing = [r.tag for r in decision.reasons if r.code == "tag_passes"]
    rows = [{"tag": tag, "probability": probability, "threshold": policy.threshold(tag), "passes": tag in passing}
            for tag, probability in scores]
    return {"image": target, "publish_name": publish_name, "iteration": result.iteration, "predictions": rows,
            "passing": passing, **decision.to_dict(), "policy": {"version": policy.version, "sha256": policy.sha256},
            **({"moderation": moderation.to_dict()} if moderation is not None and hasattr(moderation, "scores")
               else {})}


def predict_with_model(model: Any, target: str, *, policy: Policy,
                       read_blob: Callable[[str, str], bytes] | None = None) -> dict[str, Any]:
    """`cvops predict --model`: classify ``target`` (a file or az://container/blob) with an exported model in this
    process and route it with ``functions.policy.decide``, as the Function App does with CVOPS_MODEL: the image is
    checked by ``functions.images.normalise`` first, and the report has :func:`predict`'s shape with ``model`` (its
    SHA-256 and labels) where the service path has ``publish_name`` and ``iteration``."""
    from functions import images

    if target.startswith(("http://", "https://")):
        raise ConfigurationError(f"{target}: --model classifies local files and az://container/blob",
                                 hint="download the image first, or give its az:// path")
    if target.startswith(SOURCE_SCHEME):
        container, _, name = target[len(SOURCE_SCHEME):].partition("/")
        if not name or read_blob is None:
            raise ConfigurationError(f"{target} names no blob", hint="write az://<container>/<path/to/image>")
        data = read_blob(container, name)
    else:
        path = Path(target)
        if not path.is_file():
            raise ConfigurationError(f"image {target} does not exist" if not path.is_dir() else
                                     f"{target} is a directory; predict classifies one image",
                                     hint="give an image file or az://container/blob")
        data = path.read_bytes()
    checked = images.normalise(data, model_side=model.picture)
    if isinstance(checked, images.Rejection):
        raise ConfigurationError(f"{target}: {checked.reason}: {checked.message}",
                                 hint="the Function App would quarantine this image")
    scores = sorted(model.predict_checked(checked), key=lambda p: (-p[1], p[0]))
    decision = decide(policy, scores)
    passing = [r.tag for r in decision.reasons if r.code == "tag_passes"]
    rows = [{"tag": tag, "probability": probability, "threshold": policy.threshold(tag), "passes": tag in passing}
            for tag, probability in scores]
    return {"image": target, "model": model.describe(), "predictions": rows, "passing": passing,
            **decision.to_dict(), "policy": {"version": policy.version, "sha256": policy.sha256}}

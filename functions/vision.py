"""The two service calls the handler makes: classify (Custom Vision prediction) and moderate (Computer Vision 3.2).

Thin on purpose: pacing and retries are :mod:`cvops.pacing`'s and :mod:`cvops.retry`'s; this module only says what
each failure means for a routed image. Transient failures (429 after the retry budget, 5xx, timeouts) propagate so the
Functions host retries the blob and finally poisons it. A refused key, an unknown project or publish name are
configuration errors naming the app setting to fix (raised too: the image is fine, the app is not). A service that
refuses the image itself (format, size, dimensions) gives an :class:`ImageRefused`, which the handler quarantines.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any

from azure.cognitiveservices.vision.computervision.models import VisualFeatureTypes

from cvops import failures, pacing, retry
from cvops.errors import ConfigurationError, ServiceError

__all__ = ["Classification", "ImageRefused", "Moderation", "ServiceCounters", "classify", "classify_exported",
           "moderate"]

_IMAGE_CODES_CV = frozenset({"BadRequestImageFormat", "BadRequestImageSizeBytes", "BadRequestImageDimensions",
                             "BadRequestImageStream", "BadRequestImageUrl"})
_IMAGE_CODES_MODERATION = frozenset({"InvalidImageFormat", "InvalidImageSize", "InvalidImageDimension",
                                     "InvalidImageUrl", "NotSupportedImage"})
_PROJECT_CODES = frozenset({"NotFoundProject"})


@dataclass
class ServiceCounters:
    """What one call cost beyond its answer: retries and 429s (the benchmark and the record report them)."""

    retries: int = 0
    throttled: int = 0

    def on_retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        self.retries += 1
        if failures.failure_kind(exc) == "throttled":
            self.throttled += 1


@dataclass(frozen=True)
class Classification:
    predictions: list[dict[str, Any]]
    iteration_id: str | None
    counters: ServiceCounters = field(default_factory=ServiceCounters)
    ms: float = 0.0

    def scores(self) -> dict[str, float]:
        return {p["tag"]: p["probability"] for p in self.predictions}


@dataclass(frozen=True)
class Moderation:
    """What a moderation API said: ``scores`` are Computer Vision's 0-1 scores (adult, racy, gore) or Content
    Safety's severities (Sexual, Violence, Hate, SelfHarm: 0, 2, 4, 6), keyed as the policy's bands are. The record
    keeps them with the API's name and version and its raw answer (``raw``), so a decision can be re-read later."""

    scores: dict[str, float]
    flags: dict[str, bool]
    counters: ServiceCounters = field(default_factory=ServiceCounters)
    ms: float = 0.0
    api: str = "computer-vision"
    api_version: str = "3.2"
    raw: dict[str, Any] | None = None
    changes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**{k: round(v, 6) for k, v in self.scores.items()}}
        if self.flags:
            out["flags"] = self.flags
        out.update(api=self.api, api_version=self.api_version, raw=self.raw)
        if self.changes:
            out["changes"] = list(self.changes)
        return out


@dataclass(frozen=True)
class ImageRefused:
    """The service refused the image itself; quarantining it is the only useful outcome."""

    service: str
    code: str | None
    message: str


def classify(client: Any, *, project_id: str, publish_name: str, data: bytes, store: bool,
             pacer: pacing.Pacer | None, what: str,
             policy: retry.RetryPolicy = retry.RetryPolicy()) -> Classification | ImageRefused:  # noqa: B008
    """Classify ``data`` with the published iteration; ``store`` keeps the image in the project (classify_image)."""
    counters = ServiceCounters()
    method = client.classify_image if store else client.classify_image_with_no_store
    started = time.perf_counter()
    try:
        result = retry.call(lambda: method(project_id, publish_name, io.BytesIO(data)), what=what, pacer=pacer,
                            idempotent=not store, on_retry=counters.on_retry, policy=policy)
    except ServiceError as exc:
        return _prediction_failure(exc)
    predictions = [{"tag": p.tag_name, "tag_id": p.tag_id, "probability": round(float(p.probability), 6)}
                   for p in (result.predictions or [])]
    predictions.sort(key=lambda p: -p["probability"])
    return Classification(predictions, getattr(result, "iteration", None), counters,
                          (time.perf_counter() - started) * 1000)


def classify_exported(model: Any, checked: Any) -> Classification:
    """Classify an image with an exported model in-process (CVOPS_MODEL): no call, no pacing, no retries.

    ``checked`` is what :func:`functions.images.normalise` accepted (with ``model_side``: its one JPEG decode is the
    model's picture), so any decode here stays within the memory budget it planned."""
    started = time.perf_counter()
    predictions = [{"tag": tag, "tag_id": None, "probability": round(probability, 6)}
                   for tag, probability in model.predict_checked(checked)]
    return Classification(predictions, None, ServiceCounters(), (time.perf_counter() - started) * 1000)


def _prediction_failure(exc: ServiceError) -> ImageRefused:
    if exc.status == 401:
        raise ConfigurationError(f"{exc.message}", setting="VISION_PREDICTION_KEY",
                                 hint="set VISION_PREDICTION_KEY to a key of the prediction resource at "
                                      "VISION_PREDICTION_ENDPOINT (or fix the endpoint)") from exc
    if exc.status == 403:
        raise ConfigurationError(f"{exc.message}", setting="VISION_PREDICTION_KEY",
                                 hint="the key or identity may not predict with this project, or the tier's quota "
                                      "is used up: check VISION_PREDICTION_KEY and the resource's quota") from exc
    if exc.status == 404 or exc.code in ("BadRequestIterationNotPublished", "BadRequestInvalidPublishName",
                                         "ErrorPredictionModelNotFound"):
        setting = "VISION_PROJECT_ID" if exc.code in _PROJECT_CODES else "VISION_PUBLISH_NAME"
        raise ConfigurationError(f"{exc.message}", setting=setting,
                                 hint="set VISION_PROJECT_ID to the project's id and VISION_PUBLISH_NAME to the name "
                                      "an iteration was published under (cvops publish --name)") from exc
    if exc.code in _IMAGE_CODES_CV or exc.status == 413:
        return ImageRefused("custom_vision", exc.code, exc.message)
    raise exc


def moderate(client: Any, *, data: bytes, pacer: pacing.Pacer | None, what: str,
             policy: retry.RetryPolicy = retry.RetryPolicy()) -> Moderation | ImageRefused:  # noqa: B008
    """Adult, racy and gore scores from Image Analysis 3.2 (the only version that has them)."""
    counters = ServiceCounters()
    started = time.perf_counter()
    try:
        result = retry.call(lambda: client.analyze_image_in_stream(io.BytesIO(data),
                                                                  visual_features=[VisualFeatureTypes.adult]),
                            what=what, pacer=pacer, idempotent=True, on_retry=counters.on_retry, policy=policy)
    except ServiceError as exc:
        if exc.status == 401:
            raise ConfigurationError(exc.message, setting="VISION_MODERATION_KEY",
                                     hint="set VISION_MODERATION_KEY to a key of the Computer Vision resource at "
                                          "VISION_MODERATION_ENDPOINT") from exc
        if exc.status in (403, 404):
            raise ConfigurationError(exc.message, setting="VISION_MODERATION_ENDPOINT",
                                     hint="point VISION_MODERATION_ENDPOINT at a Computer Vision resource in a "
                                          "region with Image Analysis 3.2") from exc
        if exc.status in (400, 413) or exc.code in _IMAGE_CODES_MODERATION:
            # Our request is fixed (one image, the Adult feature), so a 400 is about the image (its inner code
            # says which: InvalidImageFormat, InvalidImageSize, NotSupportedImage...).
            return ImageRefused("computer_vision", exc.code, exc.message)
        raise
    adult = result.adult
    scores = {"adult": float(adult.adult_score), "racy": float(adult.racy_score), "gore": float(adult.gore_score)}
    flags = {"adult": bool(adult.is_adult_content), "racy": bool(adult.is_racy_content),
             "gore": bool(adult.is_gory_content)}
    raw = {"adult": {"isAdultContent": flags["adult"], "isRacyContent": flags["racy"], "isGoryContent": flags["gore"],
                     "adultScore": scores["adult"], "racyScore": scores["racy"], "goreScore": scores["gore"]}}
    return Moderation(scores, flags, counters, (time.perf_counter() - started) * 1000, raw=raw)

"""`cvops evaluate`: the service's own numbers for an iteration and, with a holdout set, our own measurement.

Why quick test and not the prediction API for the holdout: an iteration must be evaluated *before* it is published
(the publish gates depend on it), and only ``quick_test_image``/``quick_test_image_url`` can address an unpublished
iteration. ``store=False`` keeps the holdout images out of the project's prediction history. Blob holdout images go by
SAS URL, like uploads, so their bytes never pass through this machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from cvops.errors import ConfigurationError
from pipelines import metrics
from pipelines.progress import NullReporter, Reporter
from pipelines.service import Service
from pipelines.sources import ImageSource, SourceImage
from pipelines.training import performance


def service_report(perf: Mapping[str, Any], tag_counts: Mapping[str, int]) -> dict[str, Any]:
    """The service's performance in the report shape (pipelines.report), for an evaluation without a holdout set."""
    tags = [{"tag": t["tag"], "threshold": perf["threshold"], "precision": t["precision"], "recall": t["recall"],
             "average_precision": t["average_precision"], "support": tag_counts.get(t["tag"], 0), "predicted": "n/a"}
            for t in perf["tags"]]
    return {"n_images": sum(tag_counts.values()), "tags": tags, "micro_precision": perf["precision"],
            "micro_recall": perf["recall"], "mean_average_precision": perf["mean_average_precision"],
            "source": "service (cross-validation on the training images)"}


def label_matrix(images: Sequence[SourceImage], tag_names: Sequence[str]) -> np.ndarray:
    """0/1 matrix (images x tags); a holdout tag the project does not have is an error, not a silent zero column."""
    index = {name.casefold(): j for j, name in enumerate(tag_names)}
    unknown = sorted({t for im in images for t in im.tags if t.casefold() not in index})
    if unknown:
        raise ConfigurationError(f"the holdout set uses tags the project does not have: {', '.join(unknown)}",
                                 hint="fix the holdout labels or add the tags to the spec and retrain")
    y = np.zeros((len(images), len(tag_names)), dtype=int)
    for i, im in enumerate(images):
        for t in im.tags:
            y[i, index[t.casefold()]] = 1
    return y


def score_matrix(predictions: Sequence[Mapping[str, float]], tag_names: Sequence[str]) -> np.ndarray:
    s = np.zeros((len(predictions), len(tag_names)), dtype=float)
    for i, probs in enumerate(predictions):
        for j, name in enumerate(tag_names):
            s[i, j] = float(probs.get(name, 0.0))
    return s


def predict_holdout(service: Service, source: ImageSource, images: Sequence[SourceImage], project_id: str,
                    iteration_id: str, *, concurrency: int = 4, reporter: Reporter | None = None
                    ) -> list[dict[str, float]]:
    reporter = reporter or NullReporter()

    def one(image: SourceImage) -> dict[str, float]:
        if image.is_blob:
            url = source.sas_url(image, minutes=30)
            result = service.training_call(f"quick test {image.key}",
                                           lambda c: c.quick_test_image_url(project_id, url, iteration_id=iteration_id,
                                                                            store=False))
        else:
            data = source.read(image)
            result = service.training_call(f"quick test {image.key}",
                                           lambda c: c.quick_test_image(project_id, data, iteration_id=iteration_id, store=False))
        return {p.tag_name: p.probability for p in result.predictions}

    out: list[dict[str, float]] = []
    with reporter.task(f"predicting {len(images)} holdout images", total=len(images)) as task, \
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for probs in pool.map(one, images):
            out.append(probs)
            task.advance()
    return out


def evaluate_iteration(service: Service, project_id: str, iteration: Any, *, tag_names: Sequence[str],
                       threshold: float | Mapping[str, float], service_threshold: float, multiclass: bool,
                       holdout: ImageSource | None = None, target_precision: float | None = None,
                       target_recall: float | None = None, concurrency: int = 4,
                       reporter: Reporter | None = None) -> dict[str, Any]:
    """Numbers for one iteration: ``service`` always; ``holdout`` (metrics.evaluate_scores + threshold sweep) with a set."""
    result: dict[str, Any] = {
        "iteration": {"id": iteration.id, "name": iteration.name, "status": iteration.status,
                      "publish_name": iteration.publish_name or None},
        "service": performance(service, project_id, iteration.id, service_threshold),
        "holdout": None,
    }
    if holdout is None:
        return result
    with (reporter or NullReporter()).task(f"listing {holdout}"):
        images = holdout.list()
    y = label_matrix(images, tag_names)
    predictions = predict_holdout(service, holdout, images, project_id, iteration.id, concurrency=concurrency,
                                  reporter=reporter)
    ev = holdout_numbers(y, score_matrix(predictions, tag_names), tag_names=tag_names, threshold=threshold,
                         multiclass=multiclass, target_precision=target_precision, target_recall=target_recall)
    ev["holdout_source"] = str(holdout)
    ev["iteration"] = iteration.name
    result["holdout"] = ev
    return result


def holdout_numbers(y: Any, s: Any, *, tag_names: Sequence[str], threshold: float | Mapping[str, float],
                    multiclass: bool, target_precision: float | None, target_recall: float | None) -> dict[str, Any]:
    """The holdout report of truth ``y`` and scores ``s`` (pure): metrics at the thresholds, and the threshold sweep
    when a target is given. One home for the service's path and an exported model's, so both report alike."""
    thresholds: float | dict[str, float] = dict(threshold) if isinstance(threshold, Mapping) else float(threshold)
    ev = metrics.evaluate_scores(y, s, list(tag_names), thresholds, multiclass).to_dict()
    if target_precision is not None or target_recall is not None:
        ev["threshold_sweep"] = metrics.threshold_sweep(y, s, target_precision=target_precision,
                                                        target_recall=target_recall, tag_names=list(tag_names))
    return ev


def predict_holdout_with_model(model: Any, source: ImageSource, images: Sequence[SourceImage], *,
                               concurrency: int = 2, reporter: Reporter | None = None) -> list[dict[str, float]]:
    """Each holdout image through an exported model in this process (bytes read from the source, checked by
    ``functions.images.normalise`` as the Function App does; an image it refuses scores 0 for every tag)."""
    from functions import images as image_checks

    def one(image: SourceImage) -> dict[str, float]:
        checked = image_checks.normalise(source.read(image), model_side=model.picture)
        if isinstance(checked, image_checks.Rejection):
            return {}
        return dict(model.predict_checked(checked))

    out: list[dict[str, float]] = []
    with (reporter or NullReporter()).task(f"predicting {len(images)} holdout images in-process",
                                           total=len(images)) as task, \
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for probs in pool.map(one, images):
            out.append(probs)
            task.advance()
    return out


def evaluate_model(model: Any, holdout: ImageSource, *, tag_names: Sequence[str],
                   threshold: float | Mapping[str, float], multiclass: bool, target_precision: float | None = None,
                   target_recall: float | None = None, concurrency: int = 2,
                   reporter: Reporter | None = None) -> dict[str, Any]:
    """`cvops evaluate --model`: the holdout numbers of :func:`evaluate_iteration`, for an exported model run here.
    ``service`` is None (an export has no service metrics); ``model`` names its SHA-256 and labels."""
    with (reporter or NullReporter()).task(f"listing {holdout}"):
        images = holdout.list()
    y = label_matrix(images, tag_names)
    s = score_matrix(predict_holdout_with_model(model, holdout, images, concurrency=concurrency, reporter=reporter),
                     tag_names)
    ev = holdout_numbers(y, s, tag_names=tag_names, threshold=threshold, multiclass=multiclass,
                         target_precision=target_precision, target_recall=target_recall)
    ev["holdout_source"] = str(holdout)
    ev["iteration"] = f"model {model.sha256[:12]}"
    return {"model": model.describe(), "service": None, "holdout": ev}

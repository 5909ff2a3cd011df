"""Classification metrics over plain arrays: what `cvops evaluate` reports and what publish gates compare.

Pure numpy on purpose: the same numbers must come out in CI, in the demo and in tests, with no service involved.
Definitions follow scikit-learn (the tests check them against it) so results can be compared with any other tool:

* a tag is predicted when its score is ``>= threshold`` (Custom Vision's "probability threshold");
* precision with nothing predicted, and recall with nothing to find, are 0 (scikit-learn's ``zero_division=0``);
* average precision is the step-wise area ``sum((R_n - R_{n-1}) * P_n)`` of ``average_precision_score``, not an
  interpolated one; a tag with no positive image has AP 0, and mAP averages only tags that have positives
  (a tag nobody labelled says nothing about the model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Evaluation",
    "TagMetrics",
    "average_precision",
    "choose_threshold",
    "evaluate_scores",
    "pr_curve",
    "precision_recall_at",
    "threshold_sweep",
]

# The sweep table for plots: every hundredth, enough for a smooth curve and small in a JSON report.
SWEEP_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)


def _vectors(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert one tag's labels (0/1) and scores (finite numbers) of the same length."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"y_true and scores must be 1-D for one tag, got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores must have the same length, got {y.shape[0]} and {s.shape[0]}")
    return _labels(y, "y_true"), _finite(s, "scores")


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1 (1 = the image has the tag)")
    return y.astype(bool)


def _finite(s: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(s).all():
        raise ValueError(f"{name} must be finite numbers; found NaN or infinity")
    return s


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At each distinct score, highest first: (threshold, true positives, false positives) when predicting >= it."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(s_sorted)), y_sorted.size - 1] if y_sorted.size else np.array([], int)
    tps = np.cumsum(y_sorted)[last_of_each]
    fps = (last_of_each + 1) - tps
    return s_sorted[last_of_each], tps, fps


def precision_recall_at(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """Precision and recall of one tag when it is predicted for every score ``>= threshold``."""
    y, s = _vectors(y_true, scores)
    predicted = s >= threshold
    tp = int(np.count_nonzero(predicted & y))
    return _ratio(tp, np.count_nonzero(predicted)), _ratio(tp, np.count_nonzero(y))


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall curve of one tag, as ``sklearn.metrics.precision_recall_curve`` (no point dropped).

    Returns (precision, recall, thresholds): thresholds increasing; precision and recall have one more element,
    the final (1, 0) point, so the curve ends on the precision axis. With no positives, recall is 1 everywhere
    (scikit-learn's convention) so the curve is still drawable.
    """
    y, s = _vectors(y_true, scores)
    if y.size == 0:
        return np.array([1.0]), np.array([0.0]), np.array([])
    thresholds, tps, fps = _counts(y, s)
    precision = np.divide(tps, tps + fps, out=np.zeros(tps.shape, dtype=float), where=(tps + fps) > 0)
    recall = tps / tps[-1] if tps[-1] else np.ones(tps.shape, dtype=float)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one tag, as ``sklearn.metrics.average_precision_score``; 0 when it has no positive."""
    y, s = _vectors(y_true, scores)
    if not y.any():
        return 0.0
    precision, recall, _ = pr_curve(y, s)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


@dataclass(frozen=True)
class TagMetrics:
    """One tag's numbers at its threshold. ``support`` is how many images have the tag, ``predicted`` how many got it."""

    tag: str
    threshold: float
    precision: float
    recall: float
    average_precision: float
    support: int
    predicted: int


@dataclass(frozen=True)
class Evaluation:
    """The result of :func:`evaluate_scores`; ``to_dict()`` is what reports and publish gates read (plain JSON types)."""

    n_images: int
    multiclass: bool
    tags: list[TagMetrics]
    micro_precision: float
    micro_recall: float
    mean_average_precision: float
    curves: dict[str, dict[str, list[float]]]
    accuracy: float | None = None
    confusion_matrix: list[list[int]] | None = None
    confusion_labels: list[str] | None = None
    confusion_skipped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def tag(self, name: str) -> TagMetrics:
        """The metrics of one tag, by name."""
        for metrics in self.tags:
            if metrics.tag == name:
                return metrics
        raise KeyError(f"no tag {name!r} in this evaluation; tags are {[m.tag for m in self.tags]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _matrix(y_true: Any, scores: Any, tag_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float)
    if y.ndim != 2 or s.ndim != 2:
        raise ValueError(f"y_true and scores must be 2-D (images x tags), got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores must have the same shape, got {y.shape} and {s.shape}")
    if len(tag_names) != y.shape[1]:
        raise ValueError(f"tag_names has {len(tag_names)} names for {y.shape[1]} score columns")
    if len(set(tag_names)) != len(tag_names):
        raise ValueError(f"tag_names must be unique, got {list(tag_names)}")
    return _labels(y, "y_true"), _finite(s, "scores")


def _thresholds(threshold: float | Mapping[str, float], tag_names: Sequence[str]) -> list[float]:
    if isinstance(threshold, Mapping):
        missing = [t for t in tag_names if t not in threshold]
        unknown = [t for t in threshold if t not in tag_names]
        if missing or unknown:
            raise ValueError(f"per-tag thresholds must name exactly the evaluated tags: missing {missing}, "
                             f"unknown {unknown}")
        values = [float(threshold[t]) for t in tag_names]
    else:
        values = [float(threshold)] * len(tag_names)
    for name, value in zip(tag_names, values, strict=True):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold for tag {name!r} must be between 0 and 1, got {value}")
    return values


def evaluate_scores(
    y_true: np.ndarray,
    scores: np.ndarray,
    tag_names: list[str],
    threshold: float | dict[str, float],
    multiclass: bool,
) -> Evaluation:
    """Evaluate scores (n images x k tags) against 0/1 labels.

    Per tag: precision, recall (at its threshold), AP and support; overall: micro precision/recall (all tags'
    decisions pooled), mAP over tags that have positives, and the PR curve of each tag for plots. For a Multiclass
    project also the argmax accuracy and confusion matrix (rows: true tag, columns: predicted tag, in ``tag_names``
    order); images with no true tag (negatives) are left out of those and counted in ``confusion_skipped``.
    """
    y, s = _matrix(y_true, scores, tag_names)
    thresholds = _thresholds(threshold, tag_names)
    if multiclass and (y.sum(axis=1) > 1).any():
        rows = np.flatnonzero(y.sum(axis=1) > 1)[:5].tolist()
        raise ValueError(f"multiclass evaluation needs at most one true tag per image; rows {rows} have several")
    predicted = s >= np.asarray(thresholds)
    tags: list[TagMetrics] = []
    curves: dict[str, dict[str, list[float]]] = {}
    for j, name in enumerate(tag_names):
        tp = int(np.count_nonzero(predicted[:, j] & y[:, j]))
        n_pred = int(np.count_nonzero(predicted[:, j]))
        support = int(np.count_nonzero(y[:, j]))
        tags.append(TagMetrics(
            tag=name, threshold=thresholds[j], precision=_ratio(tp, n_pred), recall=_ratio(tp, support),
            average_precision=average_precision(y[:, j], s[:, j]), support=support, predicted=n_pred,
        ))
        precision, recall, cuts = pr_curve(y[:, j], s[:, j])
        curves[name] = {"precision": precision.tolist(), "recall": recall.tolist(), "thresholds": cuts.tolist()}
    tp_all = int(np.count_nonzero(predicted & y))
    with_positives = [t.average_precision for t in tags if t.support]
    result: dict[str, Any] = {
        "n_images": int(y.shape[0]),
        "multiclass": bool(multiclass),
        "tags": tags,
        "micro_precision": _ratio(tp_all, np.count_nonzero(predicted)),
        "micro_recall": _ratio(tp_all, np.count_nonzero(y)),
        "mean_average_precision": float(np.mean(with_positives)) if with_positives else 0.0,
        "curves": curves,
    }
    if multiclass:
        labelled = y.any(axis=1)
        truth = np.argmax(y[labelled], axis=1)
        guess = np.argmax(s[labelled], axis=1)
        k = len(tag_names)
        confusion = np.zeros((k, k), dtype=int)
        np.add.at(confusion, (truth, guess), 1)
        result.update(
            accuracy=_ratio(np.count_nonzero(truth == guess), truth.size),
            confusion_matrix=confusion.tolist(),
            confusion_labels=list(tag_names),
            confusion_skipped=int(np.count_nonzero(~labelled)),
        )
    return Evaluation(**result)


def _sweep_one(y: np.ndarray, s: np.ndarray, target_precision: float | None,
               target_recall: float | None) -> dict[str, Any]:
    cuts, tps, fps = _counts(y, s)  # highest threshold first
    positives = int(np.count_nonzero(y))
    precision = np.divide(tps, tps + fps, out=np.zeros(tps.shape, dtype=float), where=(tps + fps) > 0)
    recall = tps / positives if positives else np.zeros(tps.shape, dtype=float)
    table = []
    for t in SWEEP_GRID:
        p, r = precision_recall_at(y.astype(int), s, float(t))
        table.append({"threshold": float(t), "precision": p, "recall": r})
    out: dict[str, Any] = {"support": positives, "sweep": table}

    if positives == 0 or cuts.size == 0:
        return {**out, "recommended_threshold": None, "precision": 0.0, "recall": 0.0, "met": False,
                "reason": "no image has this tag, so no threshold can be chosen; add labelled images"}
    i, met, reason = choose_threshold(precision, recall, target_precision=target_precision,
                                      target_recall=target_recall)
    return {**out, "recommended_threshold": float(cuts[i]), "precision": float(precision[i]),
            "recall": float(recall[i]), "met": met, "reason": reason}


def choose_threshold(precision: Sequence[float], recall: Sequence[float], *, target_precision: float | None = None,
                     target_recall: float | None = None) -> tuple[int, bool, str]:
    """The operating point for one target, as (index, met, reason); points are ordered highest threshold first.

    The one rule for choosing a threshold, used by :func:`threshold_sweep` (`cvops evaluate`'s recommendations) and by
    ``cvops policy suggest``, so both always agree. Target precision: the point with the highest recall whose
    precision reaches it (the highest threshold on ties); when none does, the best precision (``met`` false).
    Target recall: the highest threshold whose recall reaches it; when none does (a few points measured by the
    service), the best recall. Needs at least one point.
    """
    p, r = np.asarray(precision, dtype=float), np.asarray(recall, dtype=float)
    if p.size == 0 or p.shape != r.shape:
        raise ValueError(f"choose_threshold needs as many precisions as recalls, at least one; got {p.size}, {r.size}")
    if (target_precision is None) == (target_recall is None):
        raise ValueError("give exactly one of target_precision or target_recall")
    if target_precision is not None:
        ok = np.flatnonzero(p >= target_precision)
        if ok.size:  # argmax takes the first, i.e. the highest threshold on ties
            return int(ok[np.argmax(r[ok])]), True, f"highest recall with precision >= {target_precision:g}"
        tied = np.flatnonzero(p == p.max())
        return (int(tied[np.argmax(r[tied])]), False, f"precision {target_precision:g} cannot be met "
                f"(best is {p.max():.3f}); this is the threshold with the best precision")
    ok = np.flatnonzero(r >= target_recall)
    if ok.size:  # recall only grows as the threshold falls: the first index that meets it is the highest threshold
        return int(ok[0]), True, f"highest threshold with recall >= {target_recall:g}"
    return (int(np.argmax(r)), False, f"recall {target_recall:g} cannot be met (best is {r.max():.3f}); "
                                       "this is the highest threshold with the best recall")


def threshold_sweep(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    target_precision: float | None = None,
    target_recall: float | None = None,
    tag_names: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Recommend a threshold per tag for one target, and give the sweep table (every 0.01) for plots.

    With ``target_precision``: the threshold with the highest recall whose precision is at least the target (when
    no threshold reaches it, the one with the best precision, ``met`` false and ``reason`` saying so). With
    ``target_recall``: the highest threshold whose recall is at least the target (fewest false positives). Candidate
    thresholds are the scores themselves, so the recommendation is exact, not rounded to the grid.
    Keys are ``tag_names`` (default: column numbers as strings).
    """
    if (target_precision is None) == (target_recall is None):
        raise ValueError("give exactly one of target_precision or target_recall")
    target = target_precision if target_precision is not None else target_recall
    if not 0.0 < float(target) <= 1.0:
        raise ValueError(f"the target must be in (0, 1], got {target}")
    names = tag_names if tag_names is not None else [str(j) for j in range(np.asarray(scores).shape[-1])]
    y, s = _matrix(y_true, scores, names)
    return {name: _sweep_one(y[:, j], s[:, j], target_precision, target_recall) for j, name in enumerate(names)}

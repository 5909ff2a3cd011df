"""How the local service trains an iteration and measures it: a linear model over image features, cross-validated.

Choices, and why:

- **Model.** Standardised features into logistic regression (scikit-learn): a softmax over tags for Multiclass
  projects (probabilities sum to 1, like Custom Vision's), one independent logistic per tag for Multilabel. It fits
  a few hundred images in well under a second and gives calibrated-enough probabilities for thresholds to mean something.
- **Storage.** A fitted model is saved as plain JSON holding only what prediction needs (scaler mean and scale,
  coefficients, intercepts, the feature version) and `Model.predict_proba` is written in numpy over those arrays, so a
  stored iteration loads without pickle (no code execution from a file) and predicts identically after a round trip.
- **Measured performance.** Every image gets an out-of-fold probability from a model that never saw it (stratified
  k-fold, k = min(5, smallest class count), at least 2); `performance` computes precision, recall and average precision
  from those, with standard deviations across folds. The final model is then fitted on all images.
- **Quick vs Advanced.** Quick ("Regular") training uses fixed settings. Advanced runs a greedy, deterministic search
  (regularisation C, class weights, feature families, mirrored-image augmentation when mirrored features are given)
  scored by cross-validated mean average precision, ties broken by log loss, within a time budget. Its reported
  out-of-fold probabilities are the winner's, so they are slightly optimistic (the winner was picked on them); the
  search is small (about 15 candidates) to keep that bias small.
- **Tags without images.** A tag no training image carries gets probability ~0 (Multiclass) or a smoothed prior
  (Multilabel) rather than an error: the HTTP layer enforces Custom Vision's "5 images per tag" rule, and a fold may
  legitimately miss a rare tag.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from emulator.features import FEATURE_DIM, FEATURE_GROUPS, FEATURE_VERSION

CLASSIFICATION_TYPES = ("Multiclass", "Multilabel")
MODEL_FORMAT = "cvops-linear-model"
MODEL_FORMAT_VERSION = 1
MAX_FOLDS = 5

QUICK_SETTINGS: dict[str, Any] = {"C": 0.1, "classWeight": None, "featureGroups": ["all"], "augment": False}
"""The fixed settings of Quick training: moderate regularisation suits a few dozen images per tag and 300 features."""

_ABSENT_LOGIT = -30.0  # a Multiclass tag with no training image: softmax weight e^-30 relative to the others
_C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
_FEATURE_SUBSETS = (("color", "layout"), ("color", "layout", "edges"), ("layout", "edges", "texture"))


# ----------------------------------------------------------------------------------------------------------------------
# the model


@dataclass
class Model:
    """A trained linear classifier: z = ((x - mean) / scale) @ coef.T + intercept, then softmax or sigmoid."""

    classification_type: str
    mean: np.ndarray  # (n_features,)
    scale: np.ndarray  # (n_features,)
    coef: np.ndarray  # (n_tags, n_features)
    intercept: np.ndarray  # (n_tags,)
    feature_version: str = FEATURE_VERSION

    @property
    def n_tags(self) -> int:
        return int(self.coef.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.coef.shape[1])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(n, n_tags) probabilities: Multiclass rows sum to 1 (softmax); Multilabel tags are independent."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"features have shape {np.shape(features)}, this model expects (n, {self.n_features}); "
                f"they must come from feature version {self.feature_version!r}"
            )
        z = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        if self.classification_type == "Multiclass":
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function without overflow warnings

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (numbers as Python floats, which round-trip exactly through `json`)."""
        return {
            "format": MODEL_FORMAT,
            "formatVersion": MODEL_FORMAT_VERSION,
            "classificationType": self.classification_type,
            "featureVersion": self.feature_version,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Model:
        """Rebuild a model from `to_json` output; ValueError naming what is missing or inconsistent."""
        if not isinstance(d, dict) or d.get("format") != MODEL_FORMAT:
            raise ValueError(f"not a stored model: expected a JSON object with format {MODEL_FORMAT!r}")
        if d.get("formatVersion") != MODEL_FORMAT_VERSION:
            raise ValueError(
                f"stored model has formatVersion {d.get('formatVersion')!r}; this service reads {MODEL_FORMAT_VERSION}. "
                "Train a new iteration."
            )
        missing = [k for k in ("classificationType", "featureVersion", "mean", "scale", "coef", "intercept") if k not in d]
        if missing:
            raise ValueError(f"stored model lacks {', '.join(missing)}; train a new iteration")
        if d["classificationType"] not in CLASSIFICATION_TYPES:
            raise ValueError(f"stored model has unknown classificationType {d['classificationType']!r}")
        mean, scale = np.asarray(d["mean"], np.float64), np.asarray(d["scale"], np.float64)
        coef, intercept = np.asarray(d["coef"], np.float64), np.asarray(d["intercept"], np.float64)
        if coef.ndim != 2 or mean.shape != (coef.shape[1],) or scale.shape != mean.shape or intercept.shape != (len(coef),):
            raise ValueError(
                f"stored model arrays disagree: mean {mean.shape}, scale {scale.shape}, coef {coef.shape}, "
                f"intercept {intercept.shape}"
            )
        if not all(np.isfinite(a).all() for a in (mean, scale, coef, intercept)) or (scale == 0).any():
            raise ValueError("stored model holds non-finite numbers or a zero scale; train a new iteration")
        return cls(d["classificationType"], mean, scale, coef, intercept, str(d["featureVersion"]))


@dataclass
class TrainingResult:
    """What training produces: the model, the evidence to measure it, and what was chosen."""

    model: Model  # fitted on ALL images
    oof_probabilities: np.ndarray  # (n_images, n_tags): each image scored by a model that did not see it
    fold_of_image: np.ndarray  # (n_images,) fold index per image, for standard deviations across folds
    settings: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------------------
# training


def train(
    features: np.ndarray,
    labels: Sequence[Sequence[int]],
    n_tags: int,
    classification_type: str,
    *,
    advanced: bool = False,
    budget_seconds: float = 0.0,
    seed: int = 0,
    augmented_features: np.ndarray | None = None,
) -> TrainingResult:
    """Fit a model on `features` (n_images, n_features) with `labels[i]` = tag indexes of image i.

    `advanced` searches settings for at most about `budget_seconds` (the Quick settings are always evaluated first,
    so Advanced is never worse by its own measure; with no budget it is Quick). `augmented_features`, rows aligned
    with `features`, are features of the mirrored images: training folds may add them as extra examples; they are
    never scored. The same inputs and `seed` give the same model, as long as the budget lets the search finish
    (a budget that cuts it short stops at a point that depends on the machine's speed; `settings` says how far it got).
    """
    x, y = _validate(features, labels, n_tags, classification_type, augmented_features)
    # One BLAS/OpenMP thread: these matrices are small, and on a busy machine (the service trains while it serves,
    # on shared cores) multi-threaded BLAS made training ten times slower in our measurements, not faster.
    with threadpool_limits(limits=1):
        return _train(x, y, classification_type, advanced, budget_seconds, seed, augmented_features)


def _train(
    x: np.ndarray,
    y: np.ndarray,
    classification_type: str,
    advanced: bool,
    budget_seconds: float,
    seed: int,
    augmented_features: np.ndarray | None,
) -> TrainingResult:
    folds = make_folds(y, classification_type, seed)
    started = time.monotonic()
    if not advanced:
        settings = dict(QUICK_SETTINGS)
        oof = _cross_validate(x, y, folds, classification_type, settings, augmented_features)
        chosen = {"trainingType": "Regular", **settings, "cvScore": _score_dict(oof, y, classification_type)}
    else:
        settings, oof, chosen = _search(x, y, folds, classification_type, augmented_features, budget_seconds, started)
    model = _fit(x, y, classification_type, settings, augmented_features)
    chosen["folds"] = int(folds.max()) + 1
    chosen["trainingSeconds"] = round(time.monotonic() - started, 3)
    return TrainingResult(model=model, oof_probabilities=oof, fold_of_image=folds, settings=chosen)


def _validate(
    features: np.ndarray,
    labels: Sequence[Sequence[int]],
    n_tags: int,
    classification_type: str,
    augmented: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features as float64 and labels as an (n_images, n_tags) 0/1 matrix, or ValueError naming the problem."""
    if classification_type not in CLASSIFICATION_TYPES:
        raise ValueError(f"classification_type must be one of {CLASSIFICATION_TYPES}, got {classification_type!r}")
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be a 2-D array with one row per image (at least 2), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    if len(labels) != x.shape[0]:
        raise ValueError(f"{len(labels)} label lists for {x.shape[0]} feature rows; they must match one to one")
    if n_tags < 1:
        raise ValueError(f"n_tags must be at least 1, got {n_tags}")
    if augmented is not None and np.shape(augmented) != x.shape:
        raise ValueError(f"augmented_features has shape {np.shape(augmented)}, expected {x.shape} (one row per image)")
    y = np.zeros((x.shape[0], n_tags), dtype=np.int8)
    for i, tags in enumerate(labels):
        for t in tags:
            if not 0 <= int(t) < n_tags:
                raise ValueError(f"image {i} has tag index {t}, outside 0..{n_tags - 1}")
            y[i, int(t)] = 1
        if classification_type == "Multiclass" and y[i].sum() != 1:
            raise ValueError(
                f"image {i} has {int(y[i].sum())} tags; a Multiclass project needs exactly one tag per image"
            )
    if classification_type == "Multiclass" and np.count_nonzero(y.sum(axis=0)) < 2:
        raise ValueError("a Multiclass project needs images of at least 2 different tags to train")
    if classification_type == "Multilabel" and not y.any():
        raise ValueError("no image has a tag; tag some images before training")
    return x, y


def make_folds(y: np.ndarray, classification_type: str, seed: int) -> np.ndarray:
    """Fold index per image: stratified k-fold with k = min(5, smallest class count), at least 2.

    Multiclass stratifies by tag. Multilabel stratifies by tag combination (label powerset), falling back to plain
    shuffled k-fold when the combinations are too rare to stratify; its k uses the rarest tag's image count.
    """
    n = y.shape[0]
    counts = y.sum(axis=0)
    smallest = int(counts[counts > 0].min())
    k = max(2, min(MAX_FOLDS, smallest, n))
    if classification_type == "Multiclass":
        strata = y.argmax(axis=1)
    else:
        _, strata = np.unique(y, axis=0, return_inverse=True)
        strata = strata.ravel()
    folds = np.empty(n, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only N members": expected
        try:
            splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), strata))
        except ValueError:  # every stratum smaller than k
            splits = list(KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)))
    for fold, (_, test) in enumerate(splits):
        folds[test] = fold
    return folds


def _feature_mask(groups: Sequence[str], n_features: int) -> np.ndarray:
    mask = np.zeros(n_features, dtype=bool)
    if "all" in groups or n_features != FEATURE_DIM:
        mask[:] = True
        return mask
    for g in groups:
        mask[FEATURE_GROUPS[g]] = True
    return mask


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    classification_type: str,
    settings: dict[str, Any],
    augmented: np.ndarray | None,
    rows: np.ndarray | None = None,
) -> Model:
    """Fit one model on `rows` (all by default) of x / y, plus their mirrored copies when settings say augment."""
    rows = np.arange(len(x)) if rows is None else rows
    xt, yt = x[rows], y[rows]
    if settings.get("augment") and augmented is not None:
        xt, yt = np.vstack([xt, np.asarray(augmented, np.float64)[rows]]), np.vstack([yt, yt])
    n_tags, n_features = y.shape[1], x.shape[1]
    mask = _feature_mask(settings.get("featureGroups", ["all"]), n_features)
    scaler = StandardScaler().fit(xt[:, mask])
    xs = scaler.transform(xt[:, mask])
    mean, scale = np.zeros(n_features), np.ones(n_features)
    mean[mask], scale[mask] = scaler.mean_, scaler.scale_
    coef, intercept = np.zeros((n_tags, n_features)), np.zeros(n_tags)
    sub_coef = np.zeros((n_tags, int(mask.sum())))

    def logistic(targets: np.ndarray) -> LogisticRegression:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return LogisticRegression(C=settings["C"], class_weight=settings.get("classWeight"), max_iter=500).fit(
                xs, targets
            )

    if classification_type == "Multiclass":
        target = yt.argmax(axis=1)
        present = np.unique(target)
        intercept[:] = _ABSENT_LOGIT
        if len(present) == 1:
            intercept[present[0]] = 0.0
        else:
            lr = logistic(target)
            if len(present) == 2:
                # a binary logistic p = sigmoid(w.x + b) equals a softmax over (-(w.x + b)/2, +(w.x + b)/2)
                w, b = lr.coef_[0], lr.intercept_[0]
                sub_coef[present[0]], sub_coef[present[1]] = -w / 2, w / 2
                intercept[present[0]], intercept[present[1]] = -b / 2, b / 2
            else:
                sub_coef[present] = lr.coef_
                intercept[present] = lr.intercept_
    else:
        for t in range(n_tags):
            positives = int(yt[:, t].sum())
            if 0 < positives < len(yt):
                lr = logistic(yt[:, t])
                sub_coef[t], intercept[t] = lr.coef_[0], lr.intercept_[0]
            else:  # every image or none carries the tag: predict its smoothed rate
                rate = (positives + 0.5) / (len(yt) + 1.0)
                intercept[t] = math.log(rate / (1 - rate))
    coef[:, mask] = sub_coef
    return Model(classification_type, mean, scale, coef, intercept)


def _cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    classification_type: str,
    settings: dict[str, Any],
    augmented: np.ndarray | None,
) -> np.ndarray:
    """Out-of-fold probabilities: each fold scored by a model fitted on the other folds."""
    oof = np.zeros(y.shape, dtype=np.float64)
    for fold in range(int(folds.max()) + 1):
        test = folds == fold
        model = _fit(x, y, classification_type, settings, augmented, rows=np.flatnonzero(~test))
        oof[test] = model.predict_proba(x[test])
    return oof


# ----------------------------------------------------------------------------------------------------------------------
# Advanced: a greedy search over settings


def _score_dict(oof: np.ndarray, y: np.ndarray, classification_type: str) -> dict[str, float]:
    return {"meanAveragePrecision": round(_mean_ap(oof, y), 6), "logLoss": round(_log_loss(oof, y, classification_type), 6)}


def _rank(score: dict[str, float]) -> tuple[float, float]:
    """Higher is better: mAP first (what users read), rounded so noise-level differences fall to the log loss."""
    return (round(score["meanAveragePrecision"], 3), -score["logLoss"])


def _search(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    classification_type: str,
    augmented: np.ndarray | None,
    budget_seconds: float,
    started: float,
) -> tuple[dict[str, Any], np.ndarray, dict[str, Any]]:
    """Coordinate-wise search from the Quick settings: C, then class weights, feature families, augmentation, C again.

    Each stage tries its values with the best settings so far and keeps a change only if it ranks higher. The order
    is fixed, so the search is deterministic; it stops early when the next evaluation would overrun the budget.
    """
    evaluated: dict[str, tuple[dict[str, Any], np.ndarray, dict[str, float]]] = {}
    last_cost = 0.0
    stopped_early = False

    def try_settings(settings: dict[str, Any]) -> bool:
        nonlocal last_cost, stopped_early
        key = repr(sorted(settings.items()))
        if key in evaluated:
            return True
        if evaluated and time.monotonic() - started + last_cost > budget_seconds:
            stopped_early = True
            return False
        t0 = time.monotonic()
        oof = _cross_validate(x, y, folds, classification_type, settings, augmented)
        evaluated[key] = (settings, oof, _score_dict(oof, y, classification_type))
        last_cost = time.monotonic() - t0
        return True

    def best() -> tuple[dict[str, Any], np.ndarray, dict[str, float]]:
        # max keeps the first of equals: earlier (simpler, closer to Quick) candidates win ties
        return max(evaluated.values(), key=lambda item: _rank(item[2]))

    try_settings(dict(QUICK_SETTINGS))
    stages: list[list[tuple[str, Any]]] = [
        [("C", c) for c in _C_GRID],
        [("classWeight", "balanced")],
        [("featureGroups", list(groups)) for groups in _FEATURE_SUBSETS] if x.shape[1] == FEATURE_DIM else [],
        [("augment", True)] if augmented is not None else [],
    ]
    for stage in stages:
        base = best()[0]
        for name, value in stage:
            if not try_settings({**base, name: value}):
                break
    base = best()[0]
    i = _C_GRID.index(base["C"]) if base["C"] in _C_GRID else 0
    for c in _C_GRID[max(0, i - 1) : i + 2]:  # the other settings may have moved the best C
        try_settings({**base, "C": c})
    settings, oof, score = best()
    chosen = {
        "trainingType": "Advanced",
        **settings,
        "cvScore": score,
        "candidatesEvaluated": len(evaluated),
        "searchStoppedByBudget": stopped_early,
        "budgetSeconds": budget_seconds,
    }
    return settings, oof, chosen


# ----------------------------------------------------------------------------------------------------------------------
# performance


def _binary(labels: Sequence[Sequence[int]] | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(labels, np.ndarray) and labels.shape == shape:
        return (labels > 0).astype(np.int8)
    y = np.zeros(shape, dtype=np.int8)
    if len(labels) != shape[0]:
        raise ValueError(f"{len(labels)} label lists for {shape[0]} probability rows; they must match one to one")
    for i, tags in enumerate(labels):
        for t in tags:
            if not 0 <= int(t) < shape[1]:
                raise ValueError(f"image {i} has tag index {t}, outside 0..{shape[1] - 1}")
            y[i, int(t)] = 1
    return y


def _ratio(numerator: float, denominator: float) -> float:
    """A precision or recall with nothing to count is 0: no prediction made is no precision shown."""
    return float(numerator / denominator) if denominator else 0.0


def _precision_recall(p: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float, float]:
    predicted = p >= threshold
    tp = float(np.logical_and(predicted, y == 1).sum())
    return _ratio(tp, float(predicted.sum())), _ratio(tp, float(y.sum()))


def _ap(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """Average precision of one tag's ranking (sklearn's step-wise area under the PR curve); None without positives."""
    if truth.sum() == 0:
        return None
    return float(average_precision_score(truth, scores))


def _mean_ap(p: np.ndarray, y: np.ndarray) -> float:
    aps = [a for t in range(y.shape[1]) if (a := _ap(p[:, t], y[:, t])) is not None]
    return float(np.mean(aps)) if aps else 0.0


def _log_loss(p: np.ndarray, y: np.ndarray, classification_type: str) -> float:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    if classification_type == "Multiclass":
        return float(-np.mean(np.log(q[y == 1])))
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def _std(values: list[float]) -> float:
    """Population standard deviation across folds; 0 when fewer than two folds could be measured."""
    return float(np.std(values)) if len(values) >= 2 else 0.0


def performance(
    oof_probabilities: np.ndarray,
    labels: Sequence[Sequence[int]] | np.ndarray,
    fold_of_image: np.ndarray,
    threshold: float,
) -> dict[str, Any]:
    """Precision, recall and average precision at `threshold`, overall and per tag, with std deviations across folds.

    Definitions (Custom Vision's): a tag is predicted for an image when its probability is >= threshold. Overall
    precision and recall count every (image, tag) decision together (micro-average). A tag's average precision is the
    area under its precision-recall curve over the ranking of all images (sklearn `average_precision_score`,
    threshold-independent); overall averagePrecision is the mean over tags that have images (mAP). A precision with no
    prediction, or a recall with no image of the tag, is 0. Standard deviations are the population standard deviation
    of the same metric computed within each fold (folds where it is undefined for a tag are skipped).
    """
    p = np.asarray(oof_probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"oof_probabilities must be (n_images, n_tags), got shape {p.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    y = _binary(labels, p.shape)
    folds = np.asarray(fold_of_image)
    if folds.shape != (p.shape[0],):
        raise ValueError(f"fold_of_image must have one entry per image ({p.shape[0]}), got shape {folds.shape}")
    fold_ids = np.unique(folds)
    n_tags = p.shape[1]

    precision, recall = _precision_recall(p, y, threshold)
    per_fold = [(p[folds == f], y[folds == f]) for f in fold_ids]
    fold_precision = [_precision_recall(pf, yf, threshold)[0] for pf, yf in per_fold if (pf >= threshold).any()]
    fold_recall = [_precision_recall(pf, yf, threshold)[1] for pf, yf in per_fold if yf.any()]
    fold_map = [_mean_ap(pf, yf) for pf, yf in per_fold if yf.any()]

    per_tag = []
    for t in range(n_tags):
        tp, tr = _precision_recall(p[:, t], y[:, t], threshold)
        ap = _ap(p[:, t], y[:, t])
        f_prec, f_rec, f_ap = [], [], []
        for pf, yf in per_fold:
            if (pf[:, t] >= threshold).any():
                f_prec.append(_precision_recall(pf[:, t], yf[:, t], threshold)[0])
            if yf[:, t].any():
                f_rec.append(_precision_recall(pf[:, t], yf[:, t], threshold)[1])
                f_ap.append(_ap(pf[:, t], yf[:, t]))
        per_tag.append(
            {
                "precision": tp,
                "recall": tr,
                "averagePrecision": ap if ap is not None else 0.0,
                "precisionStdDeviation": _std(f_prec),
                "recallStdDeviation": _std(f_rec),
                "averagePrecisionStdDeviation": _std([a for a in f_ap if a is not None]),
            }
        )
    return {
        "precision": precision,
        "recall": recall,
        "averagePrecision": _mean_ap(p, y),
        "precisionStdDeviation": _std(fold_precision),
        "recallStdDeviation": _std(fold_recall),
        "averagePrecisionStdDeviation": _std(fold_map),
        "perTag": per_tag,
    }


__all__ = ["CLASSIFICATION_TYPES", "QUICK_SETTINGS", "Model", "TrainingResult", "make_folds", "performance", "train"]

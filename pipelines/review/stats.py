"""What the reviews say about the thresholds: per tag, how often people agreed with the model in the review band, and
the lowest accept threshold the agreement supports. Pure: decision records in, numbers out.

Why people's decisions are evidence about the threshold: an image in the review band scored just below its tag's
threshold. If people confirm the model's tag for nearly every band image scoring at least ``s``, accepting those
images without a person would have been right just as often, so the threshold could move down to ``s`` (fewer images
for people, same precision). If they often disagree, the band is catching real mistakes and the threshold stays.

How ``s`` is chosen: the same rule ``cvops evaluate`` and ``cvops policy suggest`` use
(:func:`pipelines.metrics.choose_threshold` with a target precision), on the band's own curve, where "precision" at
``s`` is the share of reviewed images scoring at least ``s`` whose human tags include the model's tag. Only points
backed by ``min_support`` reviews count: three agreeing reviews say little. The reviewed images are a sample of the
band only, so the curve says nothing below the band or above the threshold (those images were never reviewed): the
suggestion is "down to s", never "up", and it is written as the shortest decimal that keeps the same reviewed images
above it (as ``policy suggest`` writes its thresholds).

Multiclass: the model's tag is its top tag; a rejection or another tag is a disagreement. Multilabel: every tag the
model put forward (its top tag and the policy's suggestions) is judged on its own: agreed when a person kept it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pipelines.metrics import choose_threshold
from pipelines.review.shape import decision_problem

__all__ = ["DEFAULT_MIN_SUPPORT", "DEFAULT_TARGET", "Observation", "TagStats", "observations", "review_stats",
           "shortest_threshold", "tag_stats"]

DEFAULT_TARGET = 0.95
DEFAULT_MIN_SUPPORT = 10


@dataclass(frozen=True)
class Observation:
    """One model tag on one reviewed image: its score, whether people kept it, whether the image was rejected, and
    the threshold in force when the app routed it (from the record's reasons; None when unknown)."""

    tag: str
    score: float
    agreed: bool
    rejected: bool
    threshold: float | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def observations(decisions: Iterable[Mapping[str, Any]]) -> list[Observation]:
    """The observations in decision records (see the module docstring for which tags count). Records without a
    model score, and malformed records (:func:`pipelines.review.shape.decision_problem`), are skipped."""
    out = []
    for decision in decisions:
        if decision_problem(decision) is not None:
            continue  # named by review_stats; never read as if it were well formed
        model = decision.get("model") if isinstance(decision.get("model"), Mapping) else {}
        human = set(decision["tags"])
        rejected = decision.get("decision") == "rejected"
        scores = {str(t): _number(s) for t, s in model.get("scores") or [] if isinstance(t, str)}
        top = model.get("top_tag")
        if not isinstance(top, str):
            continue
        judged = [top]
        if decision.get("classification_type") == "multilabel":
            judged += [t for t in model.get("suggested") or [] if isinstance(t, str) and t != top]
        for tag in judged:
            score = _number(model.get("top_score")) if tag == top else scores.get(tag)
            if score is None:
                continue
            out.append(Observation(tag, score, tag in human, rejected,
                                   _number(model.get("threshold")) if tag == top else None))
    return out


def shortest_threshold(score: float, below: float | None) -> float:
    """The shortest decimal ``t`` with ``below < t <= score``: it keeps the same reviewed images at or above it."""
    for digits in range(1, 7):
        scale = 10 ** digits
        candidate = math.floor(score * scale + 1e-9) / scale
        if candidate <= score and (below is None or candidate > below):
            return candidate
    return score


@dataclass(frozen=True)
class TagStats:
    """One tag's reviews. ``agreement``: share of reviews where people kept the model's tag. ``suggested``: the
    lowest accept threshold the reviews support at ``target`` (None: no point has enough reviews, or none reaches
    the target), with the agreement and number of reviews at or above it. ``note``: the same in one sentence."""

    tag: str
    reviewed: int
    agreed: int
    rejected: int
    other_tag: int
    agreement: float
    min_score: float
    max_score: float
    threshold: float | None
    suggested: float | None
    suggested_agreement: float | None
    suggested_support: int | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _suggest(points: list[Observation], target: float, min_support: int) -> tuple[float, float, int] | None:
    """(threshold, agreement at or above it, reviews at or above it), or None."""
    ordered = sorted(points, key=lambda o: -o.score)
    total_agreed = sum(o.agreed for o in ordered)
    if not total_agreed:
        return None
    cuts, precision, recall, support = [], [], [], []
    agreed = 0
    for i, obs in enumerate(ordered):
        agreed += obs.agreed
        if i + 1 < len(ordered) and ordered[i + 1].score == obs.score:
            continue  # a cut falls between distinct scores only
        if i + 1 >= min_support:
            cuts.append(i)
            precision.append(agreed / (i + 1))
            recall.append(agreed / total_agreed)
            support.append(i + 1)
    if not cuts:
        return None
    index, met, _ = choose_threshold(precision, recall, target_precision=target)
    if not met:
        return None
    cut = cuts[index]
    below = ordered[cut + 1].score if cut + 1 < len(ordered) else None
    return shortest_threshold(ordered[cut].score, below), precision[index], support[index]


def tag_stats(observed: Iterable[Observation], *, target: float = DEFAULT_TARGET,
              min_support: int = DEFAULT_MIN_SUPPORT, thresholds: Mapping[str, float] | None = None) -> list[TagStats]:
    """Per tag, sorted by tag. ``thresholds`` (the policy's, when given) win over the ones the records state."""
    by_tag: dict[str, list[Observation]] = {}
    for obs in observed:
        by_tag.setdefault(obs.tag, []).append(obs)
    out = []
    for tag in sorted(by_tag):
        points = by_tag[tag]
        agreed = sum(o.agreed for o in points)
        rejected = sum(o.rejected for o in points)
        stated = [o.threshold for o in points if o.threshold is not None]
        threshold = (thresholds or {}).get(tag, max(stated) if stated else None)
        found = _suggest(points, target, min_support)
        suggested, at, support = found if found else (None, None, None)
        if found is None:
            note = (f"{len(points)} reviews, {agreed / len(points):.0%} agreed: no score has {min_support} or more "
                    f"reviews at or above it agreeing {target:.0%} of the time; keep the threshold")
        elif threshold is not None and suggested >= threshold:
            note = f"people agreed {at:.0%} of {support} times from {suggested:g}: the threshold {threshold:g} holds"
        else:
            note = (f"people agreed {at:.0%} of {support} times at or above {suggested:g}: the accept threshold "
                    f"could move down to {suggested:g}" + (f" from {threshold:g}" if threshold is not None else ""))
        out.append(TagStats(tag=tag, reviewed=len(points), agreed=agreed, rejected=rejected,
                            other_tag=len(points) - agreed - rejected, agreement=agreed / len(points),
                            min_score=min(o.score for o in points), max_score=max(o.score for o in points),
                            threshold=threshold, suggested=suggested, suggested_agreement=at,
                            suggested_support=support, note=note))
    return out


def review_stats(decisions: Iterable[Mapping[str, Any]], *, target: float = DEFAULT_TARGET,
                 min_support: int = DEFAULT_MIN_SUPPORT, thresholds: Mapping[str, float] | None = None,
                 malformed: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """The whole report as plain data (``cvops review stats --json`` and the page): totals and one entry per tag.
    Malformed decision records (those given, and any in ``decisions``) are left out of every number and listed
    under ``malformed`` as {record, why}."""
    bad = list(malformed)
    kept = []
    for decision in decisions:
        problem = decision_problem(decision)
        if problem is None:
            kept.append(decision)
        else:
            key = decision.get("key") if isinstance(decision, Mapping) else None
            bad.append((key if isinstance(key, str) else "a decision record", problem))
    decisions = kept
    observed = observations(decisions)
    tags = tag_stats(observed, target=target, min_support=min_support, thresholds=thresholds)
    accepted = sum(1 for d in decisions if d.get("decision") == "accepted")
    agreed_top = sum(1 for d in decisions if d.get("agreed"))
    return {
        "decisions": len(decisions),
        "accepted": accepted,
        "rejected": len(decisions) - accepted,
        "agreed_with_top_tag": agreed_top,
        "agreement": agreed_top / len(decisions) if decisions else None,
        "target": target,
        "min_support": min_support,
        "tags": [t.to_dict() for t in tags],
        "malformed": [{"record": name, "why": why} for name, why in bad],
    }

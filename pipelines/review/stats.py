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

__all__ = ["DEFAULT_MIN_SUPPORT", "DEFAULT_TARGET", "BandStats", "ModerationObservation", "Observation", "TagStats",
           "band_stats", "moderation_observations", "observations", "review_stats", "shortest_threshold", "tag_stats"]

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
        codes = model.get("reason_codes") or []
        if model.get("moderation") and not {"review_band", "no_tag_passes", "invalid_score"} & set(codes):
            continue  # moderation sent it to people while the tag passed: no evidence about the tag's review band
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
        "moderation": [b.to_dict() for b in band_stats(moderation_observations(decisions), target=target,
                                                       min_support=min_support)],
        "malformed": [{"record": name, "why": why} for name, why in bad],
    }


# --- moderation bands ----------------------------------------------------------------------------------------------
# An image moderation sent to review scored inside a band (adult 0.4-0.7, Sexual severity 2...). A person's decision
# on it is evidence about that band: rejecting the image agrees that the score meant something objectionable; accepting
# it says the band sent a harmless image to a person. If people reject nearly every reviewed image from some score up,
# those images could be blocked without a person (the block band could start there); if they accept nearly every one up
# to some score, the review band could start above it (fewer images for people). Same evidence rule as the tags': a
# share of at least ``target`` backed by at least ``min_support`` reviews. Blocked images are never reviewed, so the
# block band itself has no evidence here unless some of its images were sent to people.

@dataclass(frozen=True)
class ModerationObservation:
    """One moderation band that sent one reviewed image to people: the value the service answered, the band's limit,
    and whether the person blocked (rejected) the image."""

    name: str
    band: str
    value: float
    limit: float
    blocked: bool
    api: str | None = None


SEVERITIES = (0, 2, 4, 6)
"""Content Safety's image severities: a name whose values are these is on the severity scale (reject_from)."""
SEVERITY_NAMES = ("Sexual", "Violence", "Hate", "SelfHarm")


def moderation_observations(decisions: Iterable[Mapping[str, Any]]) -> list[ModerationObservation]:
    """The moderation bands named in well-formed decision records (``model.moderation``, written by
    :func:`pipelines.review.decisions.build_decision` from the record's reasons)."""
    out = []
    for decision in decisions:
        if decision_problem(decision) is not None:
            continue
        model = decision.get("model") if isinstance(decision.get("model"), Mapping) else {}
        api = model.get("moderation_api") if isinstance(model.get("moderation_api"), str) else None
        for band in model.get("moderation") or []:
            if not isinstance(band, Mapping) or not isinstance(band.get("name"), str):
                continue
            value, limit = _number(band.get("value")), _number(band.get("limit"))
            if value is None or limit is None or band.get("band") not in ("review", "reject"):
                continue
            out.append(ModerationObservation(band["name"], band["band"], value, limit,
                                             decision.get("decision") == "rejected", api))
    return out


def _short_decimal_in(low: float | None, high: float, *, include_high: bool) -> float:
    """A shortest decimal in ``(low, high]``, the lowest of them (a review band starts as low as the evidence lets it:
    images above the accepted ones are still seen); or in ``[low, high)`` when not ``include_high``, the highest of
    them (a block band starts no lower than the evidence: unreviewed values under it are not blocked)."""
    for digits in range(1, 7):
        scale = 10 ** digits
        if include_high:
            candidate = ((math.floor(low * scale + 1e-9) + 1) / scale if low is not None
                         else math.floor(high * scale + 1e-9) / scale)
            if candidate <= high + 1e-12:
                return candidate
        else:
            candidate = (math.ceil(high * scale - 1e-9) - 1) / scale
            if candidate >= (low if low is not None else 0.0):
                return candidate
    return high


@dataclass(frozen=True)
class BandStats:
    """One moderation name's reviews (``adult``, ``Sexual``...). ``agreement``: share of reviews where people blocked
    the image (agreed that the band was right to stop it). ``block_from``: the lowest value from which people blocked
    at least ``target`` of at least ``min_support`` reviews, and the policy limit that would block those without a
    person (``reject_above`` on the 0-1 scale, ``reject_from`` on severities); ``pass_up_to``: the highest value up to
    which people accepted at least ``target``, and the ``review_from`` that would pass those. ``note``: one sentence."""

    name: str
    api: str | None
    scale: str
    reviewed: int
    blocked: int
    accepted: int
    agreement: float
    min_value: float
    max_value: float
    review_from: float | None
    reject_limit: float | None
    block_from: float | None
    suggested_reject: float | None
    pass_up_to: float | None
    suggested_review_from: float | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _block_from(points: list[ModerationObservation], target: float, min_support: int) -> float | None:
    """Lowest distinct value v with at least ``min_support`` reviews at or above v, ``target`` of them blocked."""
    ordered = sorted(points, key=lambda o: -o.value)
    found, blocked = None, 0
    for i, obs in enumerate(ordered):
        blocked += obs.blocked
        if i + 1 < len(ordered) and ordered[i + 1].value == obs.value:
            continue
        if i + 1 >= min_support and blocked / (i + 1) >= target:
            found = obs.value
    return found


def _pass_up_to(points: list[ModerationObservation], target: float, min_support: int) -> float | None:
    """Highest distinct value v with at least ``min_support`` reviews at or below v, ``target`` of them accepted."""
    ordered = sorted(points, key=lambda o: o.value)
    found, allowed = None, 0
    for i, obs in enumerate(ordered):
        allowed += not obs.blocked
        if i + 1 < len(ordered) and ordered[i + 1].value == obs.value:
            continue
        if i + 1 >= min_support and allowed / (i + 1) >= target:
            found = obs.value
    return found


def band_stats(observed: Iterable[ModerationObservation], *, target: float = DEFAULT_TARGET,
               min_support: int = DEFAULT_MIN_SUPPORT) -> list[BandStats]:
    """Per moderation name, sorted by name: agreement with the band's decision and what it means for the band."""
    by_name: dict[str, list[ModerationObservation]] = {}
    for obs in observed:
        by_name.setdefault(obs.name, []).append(obs)
    out = []
    for name in sorted(by_name):
        points = by_name[name]
        severity = name in SEVERITY_NAMES
        values = sorted({o.value for o in points})
        blocked = sum(o.blocked for o in points)
        review_from = max((o.limit for o in points if o.band == "review"), default=None)
        reject_limit = max((o.limit for o in points if o.band == "reject"), default=None)
        block_from = _block_from(points, target, min_support)
        # Only below where people block: the two suggestions never claim the same reviews.
        pass_up_to = _pass_up_to([o for o in points if block_from is None or o.value < block_from], target,
                                 min_support)
        suggested_reject = suggested_review = None
        if block_from is not None:
            lower = [v for v in values if v < block_from]
            suggested_reject = (block_from if severity else
                                _short_decimal_in(lower[-1] if lower else None, block_from, include_high=False))
        if pass_up_to is not None:
            higher = [v for v in values if v > pass_up_to]
            if severity:
                nxt = [s for s in SEVERITIES if s > pass_up_to]
                suggested_review = float(nxt[0]) if nxt else None
            else:
                suggested_review = (_short_decimal_in(pass_up_to, higher[0], include_high=True) if higher else
                                    _short_decimal_in(pass_up_to, min(1.0, pass_up_to + 0.1), include_high=True))
        shown = f"{len(points)} reviews, people blocked {blocked} ({blocked / len(points):.0%})"
        unit = "severity " if severity else ""
        limit_name = "reject_from" if severity else "reject_above"
        advice = []
        if suggested_reject is not None:
            advice.append(f"people blocked at least {target:.0%} from {unit}{block_from:g}: block without a person "
                          f"from there ({limit_name}: {suggested_reject:g}"
                          + (f", now {reject_limit:g})" if reject_limit is not None else ")"))
        if pass_up_to is not None:
            advice.append(f"people accepted at least {target:.0%} up to {unit}{pass_up_to:g}: "
                          + (f"start the review band above it (review_from: {suggested_review:g}"
                             + (f", now {review_from:g})" if review_from is not None else ")")
                             if suggested_review is not None else "the band sends people nothing they block"))
        if not advice:
            advice.append(f"no value has {min_support} or more reviews agreeing {target:.0%} of the time either way; "
                          "keep the band")
        out.append(BandStats(name=name, api=next((o.api for o in points if o.api), None),
                             scale="severity" if severity else "score", reviewed=len(points), blocked=blocked,
                             accepted=len(points) - blocked, agreement=blocked / len(points),
                             min_value=values[0], max_value=values[-1], review_from=review_from,
                             reject_limit=reject_limit, block_from=block_from, suggested_reject=suggested_reject,
                             pass_up_to=pass_up_to, suggested_review_from=suggested_review,
                             note=f"{shown}; " + "; ".join(advice)))
    return out

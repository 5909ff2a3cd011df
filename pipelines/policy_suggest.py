"""`cvops policy suggest`: turn an evaluation into a routing policy file, per tag, for a target precision or recall.

Why a module of its own: a threshold is chosen from measured numbers (an evaluation), but the Function App decides
with a policy file (:mod:`functions.policy`). This is the one place that turns the first into the second, and the
one place that turns the spec's thresholds into a policy for `cvops predict`, so every routing decision in the
project is made by ``functions.policy.decide``.

What it reads (:func:`evidence_from`), all plain JSON:

* an evaluation in the shape of :meth:`pipelines.metrics.Evaluation.to_dict` (``cvops evaluate --report``'s
  ``evaluation.json`` with a holdout set, or any other set of scored, labelled images: an exported model measured
  on this machine gives the same shape): the exact precision-recall curve of each tag, so a threshold is chosen at
  an image's score and its numbers are exact;
* ``cvops evaluate --json``'s document (its holdout part when there is one, else the service's numbers);
* the service's own numbers (cross-validation on the training images) at one threshold, or at several
  (:func:`service_evidence`, what ``policy suggest`` measures itself when the spec has no holdout set).

How a threshold is chosen: :func:`pipelines.metrics.choose_threshold`, the same rule ``cvops evaluate`` recommends
with. A threshold chosen at a score is written as the shortest decimal that accepts exactly the same evaluated
images (0.87 rather than 0.873142), so the numbers in the file's comments hold for the number written.
Everything here is pure except :func:`read_evaluation`.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, Literal

import yaml

from cvops import strict_yaml
from cvops.errors import ConfigurationError
from cvops.numbers import is_finite_number
from functions.policy import Policy, parse_policy
from pipelines.metrics import choose_threshold
from pipelines.spec import ProjectSpec

__all__ = [
    "DEFAULT_REVIEW_BAND",
    "SERVICE_SWEEP",
    "Evidence",
    "Point",
    "Review",
    "Suggestion",
    "TagChoice",
    "TagEvidence",
    "Target",
    "evidence_from",
    "read_evaluation",
    "review_from",
    "service_evidence",
    "spec_policy",
    "suggest",
    "target_from",
]

Metric = Literal["precision", "recall"]
# The policy's own default band, used when no review rule is given and for tags the evaluation says nothing of.
DEFAULT_REVIEW_BAND: float = Policy.review_band
# Where the service's numbers are asked for when there is no holdout set: every 0.05 (19 calls to the training API).
SERVICE_SWEEP = tuple(round(0.05 * i, 2) for i in range(1, 20))


# --- what an evaluation says ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """Precision and recall of one tag when it is accepted at every score ``>= threshold``."""

    threshold: float
    precision: float
    recall: float


@dataclass(frozen=True)
class TagEvidence:
    """One tag's measured points, highest threshold first. ``exact``: the thresholds are the evaluated images' own
    scores (a holdout curve), so any number between one score and the next lower one decides the same way.
    ``support``: how many evaluated images have the tag (for the service: the tag's training images)."""

    tag: str
    points: tuple[Point, ...]
    support: int | None
    exact: bool


@dataclass(frozen=True)
class Evidence:
    source: str
    tags: Mapping[str, TagEvidence]
    iteration: str | None = None
    project: str | None = None


def _fraction(value: Any, where: str, origin: str) -> float:
    if not is_finite_number(value) or not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"{origin}: {where} is {value!r}, not a number from 0 to 1",
                                 setting="--evaluation", hint="give the JSON that cvops evaluate wrote, unedited")
    return float(value)


def _curve_evidence(document: Mapping[str, Any], origin: str) -> dict[str, TagEvidence]:
    support = {t.get("tag"): t.get("support") for t in document.get("tags") or [] if isinstance(t, Mapping)}
    out: dict[str, TagEvidence] = {}
    for tag, curve in (document.get("curves") or {}).items():
        if not isinstance(curve, Mapping):
            raise ConfigurationError(f"{origin}: curves.{tag} is not a curve", setting="--evaluation")
        precision, recall, cuts = (curve.get(k) or [] for k in ("precision", "recall", "thresholds"))
        if not (len(precision) == len(recall) == len(cuts) + 1):
            raise ConfigurationError(f"{origin}: curves.{tag} needs one more precision and recall than thresholds "
                                     f"(got {len(precision)}, {len(recall)}, {len(cuts)})", setting="--evaluation",
                                     hint="give the JSON that cvops evaluate wrote, unedited")
        # pr_curve's order: thresholds increasing, plus a final (precision 1, recall 0) point that is no threshold.
        points = tuple(Point(_fraction(cuts[i], f"curves.{tag}.thresholds[{i}]", origin),
                             _fraction(precision[i], f"curves.{tag}.precision[{i}]", origin),
                             _fraction(recall[i], f"curves.{tag}.recall[{i}]", origin))
                       for i in reversed(range(len(cuts))))
        n = support.get(tag)
        out[str(tag)] = TagEvidence(str(tag), points, int(n) if is_finite_number(n) else None, exact=True)
    return out


def _single_point_evidence(tags: Iterable[Any], default_threshold: Any, origin: str) -> dict[str, TagEvidence]:
    out: dict[str, TagEvidence] = {}
    for i, t in enumerate(tags):
        if not isinstance(t, Mapping) or "tag" not in t:
            raise ConfigurationError(f"{origin}: tags[{i}] names no tag", setting="--evaluation")
        threshold = _fraction(t.get("threshold", default_threshold), f"tags[{i}].threshold", origin)
        point = Point(threshold, _fraction(t.get("precision"), f"tags[{i}].precision", origin),
                      _fraction(t.get("recall"), f"tags[{i}].recall", origin))
        n = t.get("support")
        out[str(t["tag"])] = TagEvidence(str(t["tag"]), (point,), int(n) if is_finite_number(n) else None, exact=False)
    return out


def evidence_from(document: Any, *, origin: str = "evaluation") -> Evidence:
    """The per-tag points of an evaluation document (see the module's docstring for the shapes read)."""
    if not isinstance(document, Mapping):
        raise ConfigurationError(f"{origin} is not a JSON object", setting="--evaluation",
                                 hint="give the JSON of cvops evaluate --json, or the evaluation.json of --report")
    iteration = document.get("iteration")
    if isinstance(iteration, Mapping):  # cvops evaluate --json: {"iteration": {...}, "service": ..., "holdout": ...}
        iteration = iteration.get("name")
    iteration = str(iteration) if iteration else None
    project = str(document["project"]) if document.get("project") else None
    if "service" in document and "holdout" in document:
        if document["holdout"]:
            inner = evidence_from(document["holdout"], origin=origin)
            return Evidence(inner.source, inner.tags, iteration or inner.iteration, project)
        return service_evidence([document["service"]], {}, iteration=iteration, origin=origin)
    if isinstance(document.get("curves"), Mapping) and document.get("tags") is not None:
        held = document.get("holdout_source")
        source = str(document.get("source") or (f"holdout {held}" if held else "evaluation"))
        n = document.get("n_images")
        source += f" ({n} images)" if is_finite_number(n) else ""
        return Evidence(source, _curve_evidence(document, origin), iteration, project)
    if isinstance(document.get("tags"), list) and document["tags"]:  # the service's numbers at one threshold
        tags = _single_point_evidence(document["tags"], document.get("threshold"), origin)
        source = str(document.get("source") or "service (cross-validation on the training images)")
        return Evidence(source, tags, iteration, project)
    raise ConfigurationError(f"{origin} holds no per-tag numbers (no 'curves', 'tags' or 'holdout'/'service')",
                             setting="--evaluation",
                             hint="give the JSON of cvops evaluate --json, or the evaluation.json of --report")


def service_evidence(performances: Sequence[Mapping[str, Any]], support: Mapping[str, int], *,
                     iteration: str | None = None, origin: str = "service performance") -> Evidence:
    """The service's numbers (``pipelines.training.performance`` dicts) at one or several thresholds, per tag."""
    points: dict[str, list[Point]] = {}
    for perf in performances:
        for tag, ev in _single_point_evidence(perf.get("tags") or [], perf.get("threshold"), origin).items():
            points.setdefault(tag, []).extend(ev.points)
    tags = {tag: TagEvidence(tag, tuple(sorted(ps, key=lambda p: -p.threshold)), support.get(tag), exact=False)
            for tag, ps in points.items()}
    at = sorted({p.threshold for ps in points.values() for p in ps})
    where = ("with no per-tag numbers" if not at else f"at threshold {at[0]:g}" if len(at) == 1
             else f"at {len(at)} thresholds from {at[0]:g} to {at[-1]:g}")
    return Evidence(f"service (cross-validation on the training images) {where}", tags, iteration)


def read_evaluation(path: str | Path) -> Evidence:
    """:func:`evidence_from` of a JSON file; errors name the file."""
    p = Path(path)
    try:
        document = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"evaluation file {p} does not exist", setting="--evaluation",
                                 hint="write one with cvops evaluate --json > eval.json (or --report DIR), "
                                      "or leave --evaluation out to evaluate now") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"evaluation file {p} is not JSON: {e}", setting="--evaluation",
                                 hint="give the JSON of cvops evaluate --json, or the evaluation.json of --report"
                                 ) from None
    return evidence_from(document, origin=f"evaluation file {p}")


# --- what to aim for -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """Per tag: reach at least ``value`` of ``metric``. ``origin`` says where it came from (an option, a spec field)."""

    metric: Metric
    value: float
    origin: str = ""

    def describe(self) -> str:
        return f"{self.metric} {self.value:g}"


@dataclass(frozen=True)
class Review:
    """The review band under each threshold: a fixed ``width``, or down to where the target's metric reaches
    ``target`` (a lower precision a person should check, or the higher recall that catches more)."""

    width: float | None = None
    target: float | None = None

    def describe(self, metric: Metric) -> str:
        return (f"fixed width {self.width:g}" if self.target is None
                else f"down to where {metric} reaches {self.target:g}")


def target_from(spec: ProjectSpec, *, precision: float | None = None, recall: float | None = None) -> Target:
    """The target: an option, else the spec's evaluation.target_precision / target_recall, else its gates."""
    if precision is not None and recall is not None:
        raise ConfigurationError("give --target-precision or --target-recall, not both", setting="--target-recall")
    if precision is not None:
        return Target("precision", precision, "--target-precision")
    if recall is not None:
        return Target("recall", recall, "--target-recall")
    for metric, value, origin in (("precision", spec.target_precision, "spec evaluation.target_precision"),
                                  ("recall", spec.target_recall, "spec evaluation.target_recall"),
                                  ("precision", spec.gates.min_precision, "spec gates.min_precision"),
                                  ("recall", spec.gates.min_recall, "spec gates.min_recall")):
        if value is not None and value > 0:
            return Target(metric, float(value), origin)  # type: ignore[arg-type]
    raise ConfigurationError("no target: the spec has no evaluation.target_precision/target_recall and no "
                             "gates.min_precision/min_recall", setting="--target-precision",
                             hint="pass --target-precision P or --target-recall R")


def review_from(target: Target, *, width: float | None = None, precision: float | None = None,
                recall: float | None = None) -> Review:
    """The review rule from the command's options: one of a fixed width, a review precision (with a precision
    target) or a review recall (with a recall target); none: a fixed :data:`DEFAULT_REVIEW_BAND`."""
    given = [name for name, value in (("--review-band", width), ("--review-precision", precision),
                                      ("--review-recall", recall)) if value is not None]
    if len(given) > 1:
        raise ConfigurationError(f"give one of {', '.join(given)}, not several", setting=given[1])
    for option, value, metric in (("--review-precision", precision, "precision"), ("--review-recall", recall, "recall")):
        if value is not None and target.metric != metric:
            raise ConfigurationError(f"{option} goes with a {metric} target, and the target is {target.describe()} "
                                     f"({target.origin or 'given'})", setting=option,
                                     hint=f"use --review-{target.metric} or --review-band, or --target-{metric}")
        if value is not None:
            return Review(target=value)
    return Review(width=width if width is not None else DEFAULT_REVIEW_BAND)


def _check_review(target: Target, review: Review) -> None:
    if (review.width is None) == (review.target is None):
        raise ValueError("a review band is a fixed width or a review target, exactly one")
    if review.target is None:
        return
    option = f"--review-{target.metric}"
    if target.metric == "precision" and not review.target < target.value:
        raise ConfigurationError(f"{option} {review.target:g} must be below the target precision {target.value:g}: "
                                 "the band holds the less certain images under the threshold", setting=option)
    if target.metric == "recall" and not review.target > target.value:
        raise ConfigurationError(f"{option} {review.target:g} must be above the target recall {target.value:g}: "
                                 "the band reaches further down to catch more", setting=option)


# --- choosing ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TagChoice:
    """One tag's rule and why: ``at`` is the measured point its threshold stands for (None: nothing measured, the
    spec's threshold is kept), ``floor_at`` the point the review band reaches down to (review target only)."""

    tag: str
    threshold: float
    review_band: float
    met: bool
    at: Point | None
    support: int | None
    exact: bool
    reason: str
    floor_at: Point | None = None
    band_note: str = ""

    def measured(self, point: Point) -> str:
        """``precision 0.800 (4 of 5), recall 1.000 (4 of 4)``: counts only for a holdout curve, where they are exact."""
        if not self.exact or not self.support:
            support = f" (support {self.support})" if self.support is not None else ""
            return f"precision {point.precision:.3f}, recall {point.recall:.3f}{support}"
        hits = round(point.recall * self.support)
        accepted = round(hits / point.precision) if point.precision else 0
        return (f"precision {point.precision:.3f} ({hits} of {accepted}), "
                f"recall {point.recall:.3f} ({hits} of {self.support})")

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "threshold": self.threshold, "review_band": self.review_band, "met": self.met,
                "precision": self.at.precision if self.at else None, "recall": self.at.recall if self.at else None,
                "support": self.support, "measured": self.at is not None, "reason": self.reason,
                **({"review_floor": {"threshold": round(self.threshold - self.review_band, 6),
                                     "precision": self.floor_at.precision, "recall": self.floor_at.recall}}
                   if self.floor_at else {})}


def _short(value: float, below: float | None) -> float:
    """The shortest decimal (2 to 6 places) at or under ``value`` and above ``below``: it accepts exactly the images
    ``value`` accepts when ``below`` is the next lower evaluated score. ``value`` itself when none is."""
    exact = Decimal(repr(value))
    for places in range(2, 7):
        shorter = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR)
        if shorter >= 0 and (below is None or float(shorter) > below):
            return float(shorter)
    return value


def _written(ev: TagEvidence, i: int) -> float:
    """The threshold to write for point ``i`` of ``ev``."""
    if not ev.exact:
        return ev.points[i].threshold
    below = ev.points[i + 1].threshold if i + 1 < len(ev.points) else None
    return _short(ev.points[i].threshold, below)


def _choose(ev: TagEvidence | None, target: Target, review: Review, fallback: float) -> TagChoice:
    tag_band = review.width if review.width is not None else DEFAULT_REVIEW_BAND
    if ev is None or not ev.points or ev.support == 0:
        why = ("the evaluation does not name this tag" if ev is None or not ev.points
               else "no evaluated image has this tag")
        return TagChoice(ev.tag if ev else "", fallback, tag_band, False, None, ev.support if ev else None,
                         False, f"{why}, so the spec's threshold {fallback:g} is kept")
    precision = [p.precision for p in ev.points]
    recall = [p.recall for p in ev.points]
    kwargs = {f"target_{target.metric}": target.value}
    i, met, reason = choose_threshold(precision, recall, **kwargs)
    threshold = _written(ev, i)
    if review.target is None:
        return TagChoice(ev.tag, threshold, tag_band, met, ev.points[i], ev.support, ev.exact, reason)
    j, _, _ = choose_threshold(precision, recall, **{f"target_{target.metric}": review.target})
    if j <= i:  # the review target is reached no lower than the threshold: no band
        return TagChoice(ev.tag, threshold, 0.0, met, ev.points[i], ev.support, ev.exact, reason,
                         band_note=f"{target.metric} {review.target:g} is reached at no lower threshold: no band")
    floor = _written(ev, j)
    band = float(Decimal(repr(threshold)) - Decimal(repr(floor)))
    while threshold - band > ev.points[j].threshold:  # decide() subtracts in floats: keep the floor's image in the band
        band = float(Decimal(repr(band)) + Decimal("0.000001"))
    return TagChoice(ev.tag, threshold, band, met, ev.points[i], ev.support, ev.exact, reason, floor_at=ev.points[j])


@dataclass(frozen=True)
class Suggestion:
    """The policy (plain data, valid), the choice behind each tag, and the YAML file with the numbers as comments."""

    policy: Mapping[str, Any]
    choices: tuple[TagChoice, ...]
    target: Target
    review: Review
    source: str
    text: str = field(repr=False, default="")
    moderation_notes: tuple[str, ...] = ()
    """Per moderation band, what the reviews changed or why they did not (``--moderation-reviews``)."""

    @property
    def unmet(self) -> tuple[TagChoice, ...]:
        return tuple(c for c in self.choices if not c.met)

    def warnings(self) -> list[str]:
        """One line per tag whose target was not met (or not measured), saying what was used instead."""
        return [f"{c.tag}: {_verdict(c, self.target)}; threshold {c.threshold:g} used" for c in self.unmet]


def _version(spec: ProjectSpec, iteration: str | None) -> str:
    slug = "-".join(f"{spec.name} {iteration or 'suggested'}".lower().split())
    return slug[:100]


def _match(evidence: Evidence, name: str) -> TagEvidence | None:
    """A tag's evidence by name; the spec's names ignore case, as the service does."""
    if name in evidence.tags:
        return evidence.tags[name]
    return next((ev for tag, ev in evidence.tags.items() if tag.casefold() == name.casefold()), None)


def suggest(spec: ProjectSpec, evidence: Evidence, target: Target, review: Review | None = None, *,
            no_tag_passes: Literal["review", "rejected"] = "review", version: str | None = None,
            moderation: Policy | None = None,
            moderation_reviews: Sequence[Mapping[str, Any]] | None = None) -> Suggestion:
    """The routing policy for ``spec``'s tags (and any other tag the evaluation names) from ``evidence``.

    Per tag: the threshold :func:`pipelines.metrics.choose_threshold` picks for ``target`` (when the target is not
    met, its best point, said in the file); a tag with no labelled image keeps the spec's threshold. ``moderation``:
    a policy whose moderation bands are copied (no evaluation measures them); ``moderation_reviews`` (the
    ``moderation`` list of ``cvops review stats --json``) moves their limits where people's decisions support it
    (:func:`tune_moderation`). The result is validated by
    ``functions.policy.parse_policy`` and its YAML text read back to the same data.
    """
    review = review or Review(width=DEFAULT_REVIEW_BAND)
    _check_review(target, review)
    choices: list[TagChoice] = []
    named = set()
    for tag in spec.tags:
        ev = _match(evidence, tag.name)
        choice = replace(_choose(ev, target, review, spec.tag_threshold(tag.name)), tag=ev.tag if ev else tag.name)
        choices.append(choice)
        named.add(choice.tag)
    for name, ev in evidence.tags.items():  # a tag the project has and the spec does not declare
        if name not in named:
            choices.append(_choose(ev, target, review, spec.threshold))
    data: dict[str, Any] = {
        "version": version or _version(spec, evidence.iteration),
        "classification_type": spec.classification_type.lower(),
        "default_threshold": spec.threshold,
        "review_band": review.width if review.width is not None else DEFAULT_REVIEW_BAND,
        "no_tag_passes": no_tag_passes,
        "tags": {c.tag: {"threshold": c.threshold, "review_band": c.review_band} for c in choices},
    }
    if moderation is not None and moderation.moderation:
        # Either scale: Computer Vision's 0-1 bands or Content Safety's severity bands (functions.policy).
        data["moderation"] = {name: {k: v for k, v in vars(band).items() if v is not None}
                              for name, band in moderation.moderation.items()}
    notes: tuple[str, ...] = ()
    if moderation_reviews is not None and "moderation" in data:
        data["moderation"], notes = tune_moderation(data["moderation"], moderation_reviews)
    parse_policy(data, origin="the suggested policy")
    suggestion = Suggestion(data, tuple(choices), target, review, evidence.source, moderation_notes=notes)
    text = render(suggestion, spec, evidence)
    if strict_yaml.safe_load(text) != data:  # the comments and quoting must not change a value
        raise AssertionError("the suggested policy's YAML does not read back to the same data")
    return Suggestion(data, tuple(choices), target, review, evidence.source, text, notes)


def read_moderation_reviews(path: str, moderation_from: str | None) -> list[dict[str, Any]]:
    """The per-band list of a ``cvops review stats --json`` file, or a clear error naming the option."""
    if not moderation_from:
        raise ConfigurationError("--moderation-reviews tunes the bands --moderation-from copies, and none is given",
                                 setting="--moderation-reviews", hint="add --moderation-from policy.yaml")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"--moderation-reviews {path} is not readable JSON ({exc})",
                                 setting="--moderation-reviews",
                                 hint="write it with `cvops review stats --json > reviews.json`") from exc
    bands = data.get("moderation") if isinstance(data, dict) else None
    if not isinstance(bands, list):
        raise ConfigurationError(f"--moderation-reviews {path} has no moderation list (is it `cvops review stats "
                                 "--json` output?)", setting="--moderation-reviews",
                                 hint="write it with `cvops review stats --json > reviews.json`")
    return [b for b in bands if isinstance(b, dict)]


def tune_moderation(bands: Mapping[str, Mapping[str, Any]],
                    reviews: Sequence[Mapping[str, Any]]) -> tuple[dict[str, dict[str, Any]], tuple[str, ...]]:
    """The moderation bands with the limits people's reviews support (``cvops review stats``: per name its
    ``suggested_reject`` and ``suggested_review_from``), and one note per band saying what moved and why, or why not.

    A limit moves only when the result is still a band (review_from not above reject_above, below reject_from) and it
    is on the band's own scale; a name the reviews do not mention keeps its limits. Pure."""
    out = {name: dict(band) for name, band in bands.items()}
    notes = []
    by_name = {str(r.get("name")): r for r in reviews if isinstance(r, Mapping)}
    for name, band in out.items():
        found = by_name.get(name)
        if found is None:
            notes.append(f"{name}: no reviews of images this band stopped; kept")
            continue
        before = dict(band)
        reject_key = "reject_from" if "reject_from" in band or found.get("scale") == "severity" else "reject_above"
        severity = reject_key == "reject_from"
        for key, value in ((reject_key, found.get("suggested_reject")), ("review_from", found.get("suggested_review_from"))):
            if not is_finite_number(value):
                continue
            value = int(value) if severity else float(value)
            trial = {**band, key: value}
            low, high = trial.get("review_from"), trial.get(reject_key)
            if low is not None and high is not None and (low >= high if severity else low > high):
                continue  # would empty the band: the other limit must move first
            band[key] = value
        moved = [f"{k} {before.get(k)} -> {band[k]}" for k in band if before.get(k) != band[k]]
        notes.append(f"{name}: " + (", ".join(moved) if moved else "kept") + f" ({found.get('note', '')})")
    return out, tuple(notes)


# --- writing -------------------------------------------------------------------------------------------------------

def _scalar(value: Any) -> str:
    """One YAML scalar on one line: numbers plainly, strings quoted when YAML would read them as something else."""
    if isinstance(value, float):
        text = repr(value)
        return text if "e" not in text and "inf" not in text and "nan" not in text else f"{value:.17f}"
    if isinstance(value, str):
        dumped = yaml.safe_dump(value, width=math.inf, allow_unicode=True).removesuffix("\n...\n").rstrip("\n")
        return dumped if "\n" not in dumped else json.dumps(value)
    return json.dumps(value)


def _said(text: str) -> str:
    """Text for a comment: one line, no control characters."""
    return text if text.isprintable() else json.dumps(text)


def _verdict(choice: TagChoice, target: Target) -> str:
    if choice.at is None:
        return f"target {target.describe()} not measured: {choice.reason}"
    if choice.met:
        return f"target {target.describe()} met"
    best = getattr(choice.at, target.metric)
    return f"target {target.describe()} NOT met: the best {target.metric} measured is {best:.3f}, at this threshold"


def _tag_comments(choice: TagChoice, target: Target, review: Review) -> list[str]:
    if choice.at is None:
        return [f"{_said(choice.tag)}: {_verdict(choice, target)}"]
    lines = [f"{_said(choice.tag)}: from {choice.threshold:g} {choice.measured(choice.at)}; {_verdict(choice, target)}"]
    if choice.floor_at is not None:
        floor = round(choice.threshold - choice.review_band, 6)
        lines.append(f"  review band {choice.review_band:g}: from {floor:g} {choice.measured(choice.floor_at)} "
                     f"(review {target.metric} {review.target:g})")
    elif choice.band_note:
        lines.append(f"  review band 0: {choice.band_note}")
    return lines


def render(suggestion: Suggestion, spec: ProjectSpec, evidence: Evidence) -> str:
    """The policy as a commented YAML file (values from ``suggestion.policy``, numbers from its choices)."""
    data, target, review = suggestion.policy, suggestion.target, suggestion.review
    iteration = f", iteration {_said(evidence.iteration)}" if evidence.iteration else ""
    out = [
        f"# Routing policy suggested by `cvops policy suggest` for project {_said(spec.name)}{iteration}.",
        f"# Measured on: {_said(evidence.source)}.",
        f"# Target per tag: {target.describe()}" + (f" ({target.origin})" if target.origin else "")
        + f"; review band: {review.describe(target.metric)}.",
        "# Numbers are measured on the evaluated images at the threshold written (a threshold chosen at an image's",
        "# score is written as the shortest decimal that accepts the same images). Schema: functions/policy.schema.json.",
        "# Edit freely; change `version` when you do (every result record carries it).",
    ]
    if suggestion.unmet:
        out.append("# Target NOT met or not measured for: " + ", ".join(_said(c.tag) for c in suggestion.unmet)
                   + " (see below).")
    if data["classification_type"] == "multiclass" and any(c.threshold < 0.5 for c in suggestion.choices):
        out += ["# Multiclass: only the top tag is accepted; under 0.5 another tag can outscore this one, so fewer",
                "# images are accepted than counted here."]
    out += [
        f"version: {_scalar(data['version'])}",
        f"classification_type: {data['classification_type']}",
        f"default_threshold: {_scalar(float(data['default_threshold']))}"
        "   # the spec's evaluation.threshold, for a tag not listed below",
        f"review_band: {_scalar(float(data['review_band']))}",
        f"no_tag_passes: {data['no_tag_passes']}",
        "tags:",
    ]
    for choice in suggestion.choices:
        rule = data["tags"][choice.tag]
        for line in _tag_comments(choice, target, review):
            out += textwrap.wrap(line, width=116, initial_indent="  # ", subsequent_indent="  #     ",
                                 break_long_words=False, break_on_hyphens=False)
        out.append(f"  {_scalar(choice.tag)}: {{threshold: {_scalar(float(rule['threshold']))}, "
                   f"review_band: {_scalar(float(rule['review_band']))}}}")
    if "moderation" in data:
        out += ["# Moderation bands, copied (no evaluation measures them)"
                + (", tuned from people's reviews (cvops review stats):" if suggestion.moderation_notes else ":")]
        for note in suggestion.moderation_notes:
            out += textwrap.wrap(note, width=116, initial_indent="#   ", subsequent_indent="#       ",
                                 break_long_words=False, break_on_hyphens=False)
        out.append("moderation:")
        for name, band in data["moderation"].items():
            out.append(f"  {name}: {{" + ", ".join(f"{k}: {_scalar(v if isinstance(v, int) else float(v))}"
                                                    for k, v in band.items()) + "}")
    return "\n".join(out) + "\n"


# --- the spec's thresholds as a policy -----------------------------------------------------------------------------

def spec_policy(spec: ProjectSpec | None, *, threshold: float | None = None,
                classification_type: str | None = None) -> Policy:
    """The policy `cvops predict` decides with when it is given none: the spec's thresholds (or one ``threshold``
    for every tag), no review band, "no tag passes" to review. Without a spec, ``classification_type`` is the
    project's and every tag's threshold is 0.5 (or ``threshold``)."""
    kind = (spec.classification_type if spec else classification_type or "Multiclass").lower()
    data: dict[str, Any] = {
        "version": f"{spec.name if spec else 'project'}-spec-thresholds",
        "classification_type": kind,
        "default_threshold": float(threshold if threshold is not None else (spec.threshold if spec else 0.5)),
        "review_band": 0.0,
        "no_tag_passes": "review",
    }
    if spec and threshold is None:
        data["tags"] = {t.name: {"threshold": float(t.threshold)} for t in spec.tags if t.threshold is not None}
    return parse_policy(data, origin="the spec's thresholds")

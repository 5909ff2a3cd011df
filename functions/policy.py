"""The routing policy: which scores send an image to accepted/<tag>/, review/ or rejected/.

Why plain data and a pure function: a threshold is a business decision (0.8 for a retail shelf where a wrong product
costs money, 0.3 for a high-recall medical screen where a missed finding costs more), so it lives in a file the
owners edit, is validated when the app starts (a typo must not route a day of images to the wrong place), and the
decision with its reasons is data a result record stores and a test asserts without any service.

Rules, in order:
1. moderation (when scores are given): any score above its ``reject_above`` rejects; from ``review_from`` it reviews
   (Computer Vision 3.2's 0-1 scores); any severity from its ``reject_from`` rejects, from ``review_from`` it reviews
   (Content Safety's severities 0/2/4/6). A policy speaks the scale of the API the app is configured with
   (``CVOPS_MODERATION_API``); parsing refuses a band the other API would have to produce;
2. multiclass: the top tag is accepted if it reaches its threshold; if it is within its review band below, review;
3. multilabel: every tag reaching its threshold is accepted; any tag in its review band sends the whole image to
   review (a person confirms the uncertain label; the passing tags are kept as suggestions);
4. no tag passes and none is in a band: ``no_tag_passes`` (review by default).
Moderation review beats acceptance; moderation rejection beats everything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from cvops import strict_json, strict_yaml
from cvops.errors import ConfigurationError
from cvops.numbers import is_finite_number, refuse_non_finite

__all__ = [
    "MODERATION_APIS",
    "MODERATION_SCORES",
    "SEVERITY_CATEGORIES",
    "Decision",
    "Policy",
    "Reason",
    "decide",
    "load_policy",
    "parse_policy",
    "quarantine",
]

Outcome = Literal["accepted", "review", "rejected", "quarantine"]
MODERATION_SCORES = ("adult", "racy", "gore")
"""Computer Vision 3.2's 0-1 scores (``visualFeatures=Adult``)."""
SEVERITY_CATEGORIES = ("Sexual", "Violence", "Hate", "SelfHarm")
"""Content Safety's image categories, each with a severity of 0, 2, 4 or 6."""
COMPUTER_VISION = "computer-vision"
CONTENT_SAFETY = "content-safety"
MODERATION_APIS = {COMPUTER_VISION: MODERATION_SCORES, CONTENT_SAFETY: SEVERITY_CATEGORIES}
"""The moderation APIs (the values of ``CVOPS_MODERATION_API``) and the bands each can produce."""
SCHEMA_PATH = Path(__file__).with_name("policy.schema.json")
POLICY_SETTING = "CVOPS_POLICY"


@cache
def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@dataclass(frozen=True)
class Band:
    """A band on a 0-1 score (Computer Vision): reject above ``reject_above``, review from ``review_from``."""

    reject_above: float | None = None
    review_from: float | None = None


@dataclass(frozen=True)
class SeverityBand:
    """A band on a Content Safety severity (0, 2, 4, 6): reject from ``reject_from``, review from ``review_from``."""

    reject_from: int | None = None
    review_from: int | None = None


@dataclass(frozen=True)
class Policy:
    """A validated policy. ``sha256`` fingerprints its content, so a record says exactly which rules decided it."""

    version: str
    classification_type: Literal["multiclass", "multilabel"] = "multiclass"
    default_threshold: float = 0.5
    review_band: float = 0.1
    no_tag_passes: Literal["review", "rejected"] = "review"
    thresholds: Mapping[str, float] = field(default_factory=dict)
    review_bands: Mapping[str, float] = field(default_factory=dict)
    moderation: Mapping[str, Band | SeverityBand] = field(default_factory=dict)
    sha256: str = ""

    def threshold(self, tag: str) -> float:
        return self.thresholds.get(tag, self.default_threshold)

    def band(self, tag: str) -> float:
        return self.review_bands.get(tag, self.review_band)

    @property
    def uses_moderation(self) -> bool:
        return bool(self.moderation)

    @property
    def moderation_api(self) -> str | None:
        """The API whose scale the bands are on (None: no bands)."""
        if not self.moderation:
            return None
        return CONTENT_SAFETY if any(name in SEVERITY_CATEGORIES for name in self.moderation) else COMPUTER_VISION


@dataclass(frozen=True)
class Reason:
    """One rule that fired. ``code`` is stable for queries; ``message`` reads as a sentence."""

    code: str
    message: str
    tag: str | None = None
    score: float | None = None
    limit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("code", self.code), ("message", self.message), ("tag", self.tag),
                                  ("score", self.score), ("limit", self.limit)) if v is not None}


@dataclass(frozen=True)
class Decision:
    """Where the image goes, with which tags (accepted tags, or suggestions for a reviewer), and why."""

    outcome: Outcome
    tags: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "tags": list(self.tags), "reasons": [r.to_dict() for r in self.reasons]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(outcome=data["outcome"], tags=tuple(data.get("tags", ())),
                   reasons=tuple(Reason(**r) for r in data.get("reasons", ())))


def quarantine(code: str, message: str) -> Decision:
    """The decision for an image that is not usable (the reason comes from validation or the service)."""
    return Decision("quarantine", (), (Reason(code, message),))


# --- loading -------------------------------------------------------------------------------------------------------

def load_policy(source: str, base_dir: Path, *, setting: str = POLICY_SETTING,
                moderation_api: str | None = None) -> Policy:
    """The policy from the ``CVOPS_POLICY`` setting: inline JSON (starts with ``{``) or a YAML/JSON file path
    (relative paths are relative to ``base_dir``, the app root). Errors name the setting (``setting``: the
    command-line option when a command reads a policy) and every problem."""
    text = source.strip()
    if not text:
        raise ConfigurationError(f"{setting} is empty", setting=setting,
                                 hint="set it to a policy file path (e.g. policy.yaml) or inline JSON")
    if text.startswith("{"):
        try:
            data = strict_json.loads(text)
        except ValueError as exc:  # JSONDecodeError, or a key given twice
            raise ConfigurationError(f"{setting} holds inline JSON that does not parse: {exc}",
                                     setting=setting, hint="fix the JSON, or point the setting at a file") from exc
        return parse_policy(data, origin=f"{setting} (inline JSON)", moderation_api=moderation_api)
    path = Path(text)
    if not path.is_absolute():
        path = base_dir / path
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ConfigurationError(f"{setting} points at {path.name}, which is not .yaml, .yml or .json",
                                 setting=setting, hint="name the policy file with its format's extension")
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{setting}: cannot read the policy file {path} ({exc.strerror})",
                                 setting=setting,
                                 hint="deploy the file with the app, or fix the path (relative to the app root)") from exc
    try:
        data = strict_json.loads(raw) if path.suffix.lower() == ".json" else strict_yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:  # ValueError: JSONDecodeError, or a key given twice
        raise ConfigurationError(f"policy file {path} does not parse: {' '.join(str(exc).split())}",
                                 setting=setting, hint="fix its syntax") from exc
    return parse_policy(data, origin=f"policy file {path}", moderation_api=moderation_api)


def parse_policy(data: Any, *, origin: str = "policy", moderation_api: str | None = None) -> Policy:
    """Validate plain data against ``policy.schema.json`` plus the rules a schema cannot say; build a Policy.

    ``moderation_api`` (``computer-vision`` or ``content-safety``, from ``CVOPS_MODERATION_API``): a band the API
    cannot produce (``moderation.Sexual`` for Computer Vision, ``moderation.adult`` for Content Safety) is refused,
    naming the field, since it would never fire. None (a command that only copies bands): the bands may be on either
    scale, but not on both.

    Non-finite numbers are refused first (JSON Schema's ``minimum``/``maximum`` let NaN through, and a NaN limit
    would make every comparison false: ``reject_above: NaN`` would reject nothing).
    """
    refuse_non_finite(data, origin=origin, setting=POLICY_SETTING,
                      hint=f"write a number from 0 to 1 (NaN and infinities switch a rule off); see {SCHEMA_PATH.name}")
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    problems = [f"{_where(e)}: {e.message}" for e in errors]
    if not problems:
        problems += _moderation_problems(data.get("moderation") or {}, moderation_api)
    if problems:
        raise ConfigurationError(f"{origin} is not a valid routing policy: " + "; ".join(problems),
                                 setting=POLICY_SETTING,
                                 hint=f"fix it to match {SCHEMA_PATH.name} (see policy.yaml for a commented example)")
    tags = data.get("tags") or {}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return Policy(
        version=data["version"],
        classification_type=data.get("classification_type", "multiclass"),
        default_threshold=float(data.get("default_threshold", 0.5)),
        review_band=float(data.get("review_band", 0.1)),
        no_tag_passes=data.get("no_tag_passes", "review"),
        thresholds={t: float(v["threshold"]) for t, v in tags.items() if "threshold" in v},
        review_bands={t: float(v["review_band"]) for t, v in tags.items() if "review_band" in v},
        moderation={name: (SeverityBand(band.get("reject_from"), band.get("review_from"))
                           if name in SEVERITY_CATEGORIES else Band(band.get("reject_above"), band.get("review_from")))
                    for name, band in (data.get("moderation") or {}).items()},
        sha256=hashlib.sha256(canonical.encode()).hexdigest(),
    )


def _moderation_problems(bands: Mapping[str, Any], moderation_api: str | None) -> list[str]:
    """What the schema cannot say about moderation bands: empty review bands, and bands on a scale the configured
    API does not produce."""
    problems = []
    for name, band in bands.items():
        if "reject_above" in band and "review_from" in band and band["review_from"] > band["reject_above"]:
            problems.append(f"moderation.{name}: review_from {band['review_from']} is above reject_above "
                            f"{band['reject_above']}, so the review band is empty")
        if "reject_from" in band and "review_from" in band and band["review_from"] >= band["reject_from"]:
            problems.append(f"moderation.{name}: review_from {band['review_from']} is not below reject_from "
                            f"{band['reject_from']}, so the review band is empty")
    if moderation_api is not None:
        if moderation_api not in MODERATION_APIS:
            raise ConfigurationError(f"moderation API {moderation_api!r} is not one of {', '.join(MODERATION_APIS)}",
                                     setting="CVOPS_MODERATION_API",
                                     hint=f"set CVOPS_MODERATION_API to {' or '.join(MODERATION_APIS)}")
        other = next(api for api in MODERATION_APIS if api != moderation_api)
        for name in bands:
            if name not in MODERATION_APIS[moderation_api]:
                problems.append(f"moderation.{name}: a {other} band, which the configured moderation API "
                                f"({moderation_api}, CVOPS_MODERATION_API) cannot produce: use "
                                f"{', '.join(MODERATION_APIS[moderation_api])}")
    elif any(n in SEVERITY_CATEGORIES for n in bands) and any(n in MODERATION_SCORES for n in bands):
        problems.append("moderation: bands on both scales (Computer Vision's adult/racy/gore and Content Safety's "
                        "Sexual/Violence/Hate/SelfHarm); one API answers, so only one scale can apply")
    return problems


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


# --- deciding ------------------------------------------------------------------------------------------------------

def decide(policy: Policy, predictions: Mapping[str, float] | Iterable[tuple[str, float]],
           moderation: Mapping[str, float] | None = None) -> Decision:
    """Route one image from its tag probabilities (and moderation scores, if any). Pure."""
    scores = dict(predictions.items() if isinstance(predictions, Mapping) else predictions)
    reasons: list[Reason] = []
    moderation_outcome = _moderate(policy, moderation or {}, reasons)
    if moderation_outcome == "rejected":
        return Decision("rejected", (), tuple(reasons))
    # A score that is not a finite number (a service answering NaN) compares false with every limit, so it could
    # neither pass nor fail a rule: it is left out of the ranking and the image goes to a person instead.
    invalid = sorted(tag for tag, score in scores.items() if not is_finite_number(score))
    for tag in invalid:
        reasons.append(Reason("invalid_score", f"{tag} score {scores[tag]!r} is not a finite number", tag=tag))
    ranked = sorted(((t, s) for t, s in scores.items() if t not in invalid), key=lambda item: (-item[1], item[0]))
    if policy.classification_type == "multiclass":
        outcome, tags = _multiclass(policy, ranked[:1], reasons)
    else:
        outcome, tags = _multilabel(policy, ranked, reasons)
    if (moderation_outcome == "review" or invalid) and outcome == "accepted":
        outcome = "review"
    return Decision(outcome, tags, tuple(reasons))


def _moderate(policy: Policy, scores: Mapping[str, float], reasons: list[Reason]) -> Outcome | None:
    outcome: Outcome | None = None
    for name in (*MODERATION_SCORES, *SEVERITY_CATEGORIES):
        band = policy.moderation.get(name)
        score = scores.get(name)
        if band is None or score is None:
            continue
        if isinstance(band, SeverityBand):
            found = _severity(name, band, score, reasons)
            outcome = "rejected" if found == "rejected" or outcome == "rejected" else (found or outcome)
            continue
        if not is_finite_number(score):
            # NaN is above nothing and at or above nothing: without this it would pass every band unseen.
            reasons.append(Reason("invalid_score", f"{name} score {score!r} is not a finite number", tag=name))
            outcome = outcome or "review"
        elif band.reject_above is not None and score > band.reject_above:
            reasons.append(Reason("moderation_reject", f"{name} score {score:.3f} is above {band.reject_above}",
                                  tag=name, score=score, limit=band.reject_above))
            outcome = "rejected"
        elif band.review_from is not None and score >= band.review_from:
            reasons.append(Reason("moderation_review", f"{name} score {score:.3f} is at or above {band.review_from}",
                                  tag=name, score=score, limit=band.review_from))
            outcome = outcome or "review"
    return outcome


def _severity(name: str, band: SeverityBand, severity: Any, reasons: list[Reason]) -> Outcome | None:
    """A Content Safety severity against its band. A value that is not a whole number reviews (as NaN does above)."""
    if isinstance(severity, bool) or not isinstance(severity, int):
        reasons.append(Reason("invalid_score", f"{name} severity {severity!r} is not a whole number", tag=name))
        return "review"
    if band.reject_from is not None and severity >= band.reject_from:
        reasons.append(Reason("moderation_reject", f"{name} severity {severity} is at or above {band.reject_from}",
                              tag=name, score=severity, limit=band.reject_from))
        return "rejected"
    if band.review_from is not None and severity >= band.review_from:
        reasons.append(Reason("moderation_review", f"{name} severity {severity} is at or above {band.review_from}",
                              tag=name, score=severity, limit=band.review_from))
        return "review"
    return None


def _multiclass(policy: Policy, top: list[tuple[str, float]], reasons: list[Reason]) -> tuple[Outcome, tuple[str, ...]]:
    if not top:
        reasons.append(Reason("no_predictions", "the model returned no predictions"))
        return policy.no_tag_passes, ()
    tag, score = top[0]
    threshold = policy.threshold(tag)
    if score >= threshold:
        reasons.append(Reason("tag_passes", f"top tag {tag} scores {score:.3f}, at or above its threshold {threshold}",
                              tag=tag, score=score, limit=threshold))
        return "accepted", (tag,)
    floor = threshold - policy.band(tag)
    if score >= floor:
        reasons.append(Reason("review_band", f"top tag {tag} scores {score:.3f}, in the review band "
                                             f"[{max(floor, 0):.3f}, {threshold}) below its threshold",
                              tag=tag, score=score, limit=threshold))
        return "review", (tag,)
    reasons.append(Reason("no_tag_passes", f"top tag {tag} scores {score:.3f}, below its threshold {threshold} "
                                           "and its review band", tag=tag, score=score, limit=threshold))
    return policy.no_tag_passes, ()


def _multilabel(policy: Policy, ranked: list[tuple[str, float]],
                reasons: list[Reason]) -> tuple[Outcome, tuple[str, ...]]:
    passing, uncertain = [], []
    for tag, score in ranked:
        threshold = policy.threshold(tag)
        if score >= threshold:
            passing.append(tag)
            reasons.append(Reason("tag_passes", f"{tag} scores {score:.3f}, at or above its threshold {threshold}",
                                  tag=tag, score=score, limit=threshold))
        elif score >= threshold - policy.band(tag):
            uncertain.append(tag)
            reasons.append(Reason("review_band", f"{tag} scores {score:.3f}, in its review band below {threshold}",
                                  tag=tag, score=score, limit=threshold))
    if uncertain:
        return "review", tuple(passing + uncertain)
    if passing:
        return "accepted", tuple(passing)
    best = ranked[0] if ranked else None
    reasons.append(Reason("no_tag_passes", "no tag reaches its threshold" +
                          (f" (best: {best[0]} {best[1]:.3f})" if best else " (no predictions)")))
    return policy.no_tag_passes, ()

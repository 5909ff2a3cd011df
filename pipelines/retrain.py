"""`cvops retrain`: the monthly retrain as one resumable command, publishing only a challenger that is not worse.

The steps, each safe to run again (a rerun after a kill at any point continues; it never trains twice on the same
data):

1. **export**: the review decisions made since the last training become a manifest (``review export``; interrupted
   moves are finished first). Rewritten each run from the decision records, so it converges.
2. **upload**: the manifest's images go to the project (``images upload``: images the project already holds are
   recognised by their digest and skipped).
3. **train**: if an iteration is already training (an earlier run was killed while it trained), follow it; otherwise
   ask the service to train, and take "nothing new to train" to mean the newest iteration is the challenger. The
   service, not a local file, is the state: a second machine or a fresh checkout resumes the same way.
4. **evaluate**: the champion (the iteration published under the spec's name) and the challenger on the same holdout.
5. **compare and publish**: the challenger is published only if no holdout metric (mAP, micro precision, micro
   recall) is worse than the champion's by more than its margin, and it passes the spec's gates (``publish``).
6. **export** the published challenger when its domain is compact (an ONNX model for ``CVOPS_MODEL``).

Why compare on a holdout and not on the service's own numbers: the service measures each iteration on its own
training split, which changes with the data; only a fixed holdout puts champion and challenger on the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cvops.errors import ConfigurationError, ServiceError
from pipelines.service import Service

__all__ = ["METRICS", "Comparison", "Margins", "RetrainResult", "compare", "newest", "tag_rows"]

METRICS = ("mean_average_precision", "micro_precision", "micro_recall")
"""The holdout numbers a challenger must not lose on (per tag numbers are reported, not gated: one rare tag's AP
moves by chance on a small holdout)."""


@dataclass(frozen=True)
class Margins:
    """How much worse than the champion the challenger may be on each metric, in absolute points (0.01 = 1 point)."""

    mean_average_precision: float = 0.01
    micro_precision: float = 0.01
    micro_recall: float = 0.01


@dataclass(frozen=True)
class Comparison:
    metric: str
    champion: float | None
    challenger: float
    margin: float

    @property
    def passed(self) -> bool:
        return self.champion is None or self.challenger >= self.champion - self.margin

    def describe(self) -> str:
        if self.champion is None:
            return f"{self.metric} {self.challenger:.3f} (no champion to compare with)"
        sign = "not worse than" if self.passed else "worse than"
        return (f"{self.metric} {self.challenger:.3f} is {sign} the champion's {self.champion:.3f} "
                f"(margin {self.margin:g})")

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "champion": self.champion, "challenger": self.challenger,
                "margin": self.margin, "passed": self.passed}


def compare(champion: Mapping[str, Any] | None, challenger: Mapping[str, Any], margins: Margins) -> list[Comparison]:
    """Each metric of :data:`METRICS` of two holdout reports (pure)."""
    return [Comparison(m, float(champion[m]) if champion else None, float(challenger[m]), getattr(margins, m))
            for m in METRICS]


def tag_rows(champion: Mapping[str, Any] | None, challenger: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Before and after per tag (precision, recall, AP), for the report."""
    before = {t["tag"]: t for t in (champion or {}).get("tags", [])}
    rows = []
    for tag in challenger["tags"]:
        old = before.get(tag["tag"], {})
        rows.append({"tag": tag["tag"], **{f"{k}_before": old.get(k) for k in ("precision", "recall",
                                                                              "average_precision")},
                     **{f"{k}_after": tag.get(k) for k in ("precision", "recall", "average_precision")}})
    return rows


def newest(iterations: list[Any]) -> Any | None:
    return max(iterations, key=lambda it: it.created) if iterations else None


@dataclass
class RetrainResult:
    outcome: str  # published | kept_champion | nothing_new | planned
    steps: list[dict[str, Any]] = field(default_factory=list)
    champion: dict[str, Any] | None = None
    challenger: dict[str, Any] | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    export: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "kept_champion"

    def step(self, step: str, /, **facts: Any) -> None:
        self.steps.append({"step": step, **facts})

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "steps": self.steps, "champion": self.champion, "challenger": self.challenger,
                "comparisons": [c.to_dict() for c in self.comparisons], "gates": self.gates, "tags": self.tags,
                "export": self.export}


@dataclass
class Plan:
    """What one retrain run works with (the CLI builds it from the spec, the settings and the options)."""

    service: Service
    project_id: str
    publish_name: str
    since: datetime | None
    state_dir: Path
    export_reviews: Callable[[datetime | None, Path], dict[str, Any]] | None
    upload: Callable[[Path], dict[str, Any]]
    evaluate: Callable[[Any], dict[str, Any]]
    publish: Callable[[Any], Any]
    export_model: Callable[[Any, Path], dict[str, Any]] | None
    margins: Margins = field(default_factory=Margins)
    training_type: str = "Regular"
    budget_hours: int = 0
    timeout: float = 3600.0
    threshold: float = 0.5


SINCE_OVERLAP = timedelta(hours=1)
"""How far before the last training's start the default window of review decisions opens."""


def since_default(service: Service, project_id: str) -> datetime | None:
    """Where the review decisions the next training has not seen begin: the last completed iteration's start
    (``created``), an hour earlier.

    Why not its end (``trained_at``), as before: a decision made while it trained, or between the export and the
    training request of the run that started it (its upload), is in no training, and a window opening at the end
    skipped it for good (found as a flaky test: a decision in the same second as the end was skipped, since storage's
    Last-Modified has whole seconds). An earlier opening costs reads, never a duplicate: the upload recognises the
    images the project already holds by their digest and skips them, and a training with nothing new is no training."""
    started = [it.created for it in service.iterations(project_id) if it.status == "Completed" and it.created]
    return max(started) - SINCE_OVERLAP if started else None


def dry_run(plan: Plan, *, decisions_since: int | None) -> RetrainResult:
    """What a run would do, reading only."""
    result = RetrainResult("planned")
    champion = plan.service.published(plan.project_id, plan.publish_name)
    result.champion = _describe(champion)
    running = [it for it in plan.service.iterations(plan.project_id) if it.status == "Training"]
    result.step("export", since=plan.since.isoformat() if plan.since else None, decisions=decisions_since)
    result.step("upload", manifest=str(plan.state_dir / "reviewed.jsonl"))
    result.step("train", action=f"follow {running[0].name}, already training" if running else
                "train if the service sees new images; else the newest iteration is the challenger")
    result.step("evaluate", on="holdout", champion=champion.name if champion else None)
    result.step("publish", name=plan.publish_name, margins=vars(plan.margins))
    result.step("export", model="when the challenger's domain is compact" if plan.export_model else "not asked")
    return result


def run(plan: Plan) -> RetrainResult:
    """The whole retrain (see the module docstring); raises CvopsError for what stops it."""
    from pipelines.training import NOT_NEEDED, follow

    service, project_id = plan.service, plan.project_id
    result = RetrainResult("published")
    champion = service.published(project_id, plan.publish_name)
    result.champion = _describe(champion)

    manifest = plan.state_dir / "reviewed.jsonl"
    if plan.export_reviews is not None:
        exported = plan.export_reviews(plan.since, manifest)
        result.step("export", since=plan.since.isoformat() if plan.since else None, **exported)
        if exported.get("images"):
            result.step("upload", **plan.upload(manifest))

    iterations = service.iterations(project_id)
    running = [it for it in iterations if it.status == "Training"]
    if running:
        iteration = running[0]
        result.step("train", action="followed", iteration=iteration.name)
    else:
        try:
            iteration = service.start_training(
                "start training", lambda c: c.train_project(project_id, training_type=plan.training_type,
                                                            reserved_budget_in_hours=plan.budget_hours
                                                            if plan.training_type == "Advanced" else 0))
            result.step("train", action="started", iteration=iteration.name)
        except ServiceError as e:
            if e.code != NOT_NEEDED:
                raise
            iteration = newest(service.iterations(project_id))
            if iteration is None:
                raise
            result.step("train", action="nothing new to train", iteration=iteration.name)
    followed = follow_training(follow, plan, iteration)
    if followed.outcome != "completed":
        raise ServiceError(followed.error or f"training {iteration.name} ended {followed.outcome}",
                           hint="see `cvops status`; run `cvops retrain` again to pick it up")
    challenger = service.training_call("get iteration", lambda c: c.get_iteration(project_id, followed.iteration_id))
    result.challenger = _describe(challenger)
    if champion is not None and champion.id == challenger.id:
        result.outcome = "nothing_new"
        result.step("evaluate", skipped="the challenger is the champion: nothing new since it was trained")
        _export(plan, challenger, result)  # a run killed after publishing had not exported yet
        return result

    champion_ev = plan.evaluate(champion) if champion is not None else None
    challenger_ev = plan.evaluate(challenger)
    result.step("evaluate", champion=_numbers(champion_ev), challenger=_numbers(challenger_ev))
    result.comparisons = compare(champion_ev, challenger_ev, plan.margins)
    result.tags = tag_rows(champion_ev, challenger_ev)
    if not all(c.passed for c in result.comparisons):
        result.outcome = "kept_champion"
        result.step("publish", skipped="the challenger is worse than the champion on the holdout")
        return result
    published = plan.publish(challenger)
    result.gates = [{"metric": g.metric, "required": g.required, "actual": g.actual, "passed": g.passed}
                    for g in published.gates]
    result.step("publish", outcome=published.outcome, name=plan.publish_name)
    if not published.ok:
        result.outcome = "kept_champion"
        return result
    _export(plan, challenger, result)
    return result


def _export(plan: Plan, iteration: Any, result: RetrainResult) -> None:
    """Export the published iteration when its domain is compact, unless this run or an earlier one already did."""
    if plan.export_model is None:
        return
    out = plan.state_dir / f"{iteration.name}.onnx.zip"
    if out.exists():
        result.export = {"path": str(out), "already": True}
        result.step("export", path=str(out), already=True)
        return
    domain = plan.service.training_call("get domain", lambda c: c.get_domain(iteration.domain_id))
    if domain.exportable:
        result.export = plan.export_model(iteration, out)
        result.step("export", path=str(out))
    else:
        result.step("export", skipped=f"domain {domain.name} cannot be exported")


def follow_training(follow: Callable[..., Any], plan: Plan, iteration: Any) -> Any:
    """Wait for the challenger's training (its own function, so a test can stop a run exactly here)."""
    return follow(plan.service, plan.project_id, iteration, training_type=plan.training_type, timeout=plan.timeout,
                  threshold=plan.threshold)


def _describe(iteration: Any) -> dict[str, Any] | None:
    if iteration is None:
        return None
    return {"id": iteration.id, "name": iteration.name, "status": iteration.status,
            "trained_at": iteration.trained_at.isoformat() if iteration.trained_at else None}


def _numbers(ev: Mapping[str, Any] | None) -> dict[str, float] | None:
    return {m: round(float(ev[m]), 4) for m in METRICS} if ev else None


def require_holdout(holdout: Any) -> Any:
    if holdout is None:
        raise ConfigurationError("retrain compares champion and challenger on a holdout set, and none was given",
                                 setting="--holdout",
                                 hint="pass --holdout FOLDER|az://container/prefix (or declare data.holdout in the spec)")
    return holdout


def markdown(result: RetrainResult, project: str) -> str:
    """The one report a person reads: outcome, the comparison, and before/after per tag."""
    lines = [f"# cvops retrain: {project}: {result.outcome.replace('_', ' ')}", ""]
    if result.champion:
        lines.append(f"Champion: {result.champion['name']}.")
    if result.challenger:
        lines.append(f"Challenger: {result.challenger['name']}.")
    lines += ["", *[f"- {c.describe()}" for c in result.comparisons]]
    lines += [f"- gate {g['metric']}: {g['actual']:.3f} (required {g['required']:g}) "
              f"{'passed' if g['passed'] else 'failed'}" for g in result.gates if g.get("actual") is not None]
    if result.tags:
        lines += ["", "| tag | precision before | after | recall before | after | AP before | after |",
                  "|---|---|---|---|---|---|---|"]
        for row in result.tags:
            cells = [row["tag"].replace("|", "\\|")] + [
                "" if row[k] is None else f"{row[k]:.3f}" for k in (
                    "precision_before", "precision_after", "recall_before", "recall_after",
                    "average_precision_before", "average_precision_after")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

"""`cvops train`: start a training run and, with ``wait``, follow it to Completed or Failed.

"Nothing new to train" (``BadRequestTrainingNotNeeded``) is an outcome, not a crash: the command says so and points at
the newest iteration, which is what a rerun of a release pipeline must do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cvops.errors import CvopsError, ServiceError
from pipelines.progress import NullReporter, Reporter
from pipelines.service import Service

NOT_NEEDED = "BadRequestTrainingNotNeeded"


@dataclass
class TrainResult:
    outcome: str  # started | completed | failed | timeout | not_needed
    iteration_id: str | None = None
    iteration_name: str | None = None
    status: str | None = None
    seconds: float = 0.0
    error: str | None = None
    performance: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome in ("started", "completed", "not_needed")

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "iteration_id": self.iteration_id, "iteration_name": self.iteration_name,
                "status": self.status, "seconds": round(self.seconds, 1), "error": self.error,
                "performance": self.performance}


def performance(service: Service, project_id: str, iteration_id: str, threshold: float) -> dict[str, Any]:
    """The service's own precision/recall/AP, overall and per tag, at a threshold (plain dict)."""
    perf = service.training_call("get iteration performance",
                                 lambda c: c.get_iteration_performance(project_id, iteration_id, threshold=threshold))
    return {
        "threshold": threshold,
        "precision": perf.precision, "recall": perf.recall, "mean_average_precision": perf.average_precision,
        "tags": [{"tag": t.name, "precision": t.precision, "recall": t.recall,
                  "average_precision": t.average_precision} for t in (perf.per_tag_performance or [])],
    }


def train(service: Service, project_id: str, *, training_type: str = "Regular", budget_hours: int = 0,
          force: bool = False, wait: bool = False, timeout: float = 3600.0, threshold: float = 0.5,
          reporter: Reporter | None = None, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], Any] = time.sleep) -> TrainResult:
    started = clock()
    try:
        iteration = service.start_training(
            "start training",
            lambda c: c.train_project(project_id, training_type=training_type,
                                      reserved_budget_in_hours=budget_hours if training_type == "Advanced" else 0,
                                      force_train=force))
    except ServiceError as e:
        if e.code != NOT_NEEDED:
            raise
        latest = _latest(service, project_id)
        return TrainResult("not_needed", latest.id if latest else None, latest.name if latest else None,
                           latest.status if latest else None, error=e.message)
    result = TrainResult("started", iteration.id, iteration.name, iteration.status)
    if not wait:
        return result
    return follow(service, project_id, iteration, training_type=training_type, timeout=timeout, threshold=threshold,
                  reporter=reporter, clock=clock, sleep=sleep, started=started)


def follow(service: Service, project_id: str, iteration: Any, *, training_type: str = "Regular",
           timeout: float = 3600.0, threshold: float = 0.5, reporter: Reporter | None = None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep,
           started: float | None = None) -> TrainResult:
    """Poll ``iteration`` until Completed or Failed (or ``timeout``): also how a rerun picks up a training that an
    earlier, killed run started, instead of starting a second one."""
    reporter = reporter or NullReporter()
    started = clock() if started is None else started
    result = TrainResult("started", iteration.id, iteration.name, iteration.status)
    delay = 0.25  # local training takes seconds, Azure's minutes: start fast, back off to 10 s
    with reporter.task(f"training {iteration.name} ({training_type})") as task:
        while iteration.status not in ("Completed", "Failed"):
            elapsed = clock() - started
            if elapsed >= timeout:
                result.outcome, result.seconds = "timeout", elapsed
                result.error = (f"iteration {iteration.name} is still {iteration.status} after {timeout:.0f} s; "
                                "it keeps training: check later with `cvops status`")
                return result
            sleep(min(delay, max(0.0, timeout - elapsed)))
            delay = min(delay * 1.25, 10.0)
            iteration = service.training_call("get iteration", lambda c: c.get_iteration(project_id, result.iteration_id))
            task.describe(f"training {iteration.name}: {iteration.status} ({clock() - started:.0f} s)")
    result.status, result.seconds = iteration.status, clock() - started
    if iteration.status == "Failed":
        result.outcome = "failed"
        result.error = f"iteration {iteration.name} failed: {iteration.training_error_details or 'no details given'}"
        return result
    result.outcome = "completed"
    result.performance = performance(service, project_id, iteration.id, threshold)
    return result


def _latest(service: Service, project_id: str) -> Any | None:
    iterations = service.iterations(project_id)
    return max(iterations, key=lambda it: it.created) if iterations else None


def explain(error: CvopsError) -> CvopsError:
    """Training refusals the operator can fix, with what to do."""
    hints = {
        "BadRequestNotEnoughImagesPerTag": "each tag needs at least 5 images: upload more (`cvops images upload`)",
        "BadRequestTrainingAlreadyInProgress": "wait for the running iteration (`cvops status`) and run again",
        "BadRequestWorkspaceCannotBeModified": "wait for the running iteration (`cvops status`) and run again",
    }
    if isinstance(error, ServiceError) and error.code in hints:
        return ServiceError(error.message, code=error.code, status=error.status, hint=hints[error.code])
    return error

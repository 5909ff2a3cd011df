"""Publish gates and iteration retention: the two decisions `cvops publish` makes, as pure functions.

Why pure: a gate that lets a bad model through, or a retention rule that deletes the published iteration, is the
expensive kind of bug; both are checked here on plain numbers and lists, without a service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pipelines.spec import Gates


@dataclass(frozen=True)
class GateResult:
    metric: str
    required: float
    actual: float

    @property
    def passed(self) -> bool:
        return self.actual >= self.required

    def describe(self) -> str:
        mark = "ok" if self.passed else "FAILED"
        return f"{self.metric} {self.actual:.3f} (minimum {self.required:.3f}) {mark}"


def check_gates(gates: Gates, *, precision: float, recall: float, mean_average_precision: float) -> list[GateResult]:
    """One result per gate that is set; an unset gate is not checked."""
    results = []
    for metric, required, actual in (("precision", gates.min_precision, precision),
                                     ("recall", gates.min_recall, recall),
                                     ("mAP", gates.min_map, mean_average_precision)):
        if required is not None:
            results.append(GateResult(metric, float(required), float(actual)))
    return results


def failed(results: Sequence[GateResult]) -> list[GateResult]:
    return [r for r in results if not r.passed]


@dataclass(frozen=True)
class IterationInfo:
    id: str
    name: str
    status: str
    created: datetime
    publish_name: str = ""


FINISHED = {"Completed", "Failed"}


def iterations_to_delete(iterations: Sequence[IterationInfo], keep: int, *, protect: Sequence[str] = ()) -> list[str]:
    """Ids of unpublished, finished iterations beyond the newest ``keep`` of them.

    Never: a published iteration, one still training (deleting it would cancel a run someone started), or one whose id
    is in ``protect`` (the iteration being published right now, whose publish name the listing may not show yet).
    """
    if keep < 0:
        raise ValueError(f"keep must be 0 or more, got {keep}")
    candidates = [it for it in iterations
                  if not it.publish_name and it.status in FINISHED and it.id not in set(protect)]
    candidates.sort(key=lambda it: it.created, reverse=True)
    return [it.id for it in candidates[keep:]]

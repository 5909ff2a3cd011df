"""`cvops publish`: gate, publish, move the publish name, prune old iterations.

Order matters. Gates first (refusing leaves everything as it was). If the name is already on the chosen iteration,
nothing is published again (reruns converge). Otherwise the name moves from the previous iteration to the new one in one
call (``overwrite``), so predictions under the name never find it unpublished. Pruning comes last and
never touches the published iteration or one still training (gates.iterations_to_delete).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cvops.errors import CvopsError
from pipelines import config
from pipelines.gates import GateResult, IterationInfo, check_gates, failed, iterations_to_delete
from pipelines.service import Service
from pipelines.spec import Gates
from pipelines.training import performance


@dataclass
class PublishResult:
    iteration_id: str
    iteration_name: str
    publish_name: str
    outcome: str  # published | already_published | refused
    gates: list[GateResult] = field(default_factory=list)
    unpublished: str | None = None
    deleted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome != "refused"

    def to_dict(self) -> dict[str, Any]:
        return {"iteration_id": self.iteration_id, "iteration_name": self.iteration_name,
                "publish_name": self.publish_name, "outcome": self.outcome,
                "gates": [{"metric": g.metric, "required": g.required, "actual": g.actual, "passed": g.passed}
                          for g in self.gates],
                "unpublished": self.unpublished, "deleted_iterations": self.deleted}


def publish(service: Service, project_id: str, iteration_ref: str | None, *, publish_name: str, gates: Gates,
            threshold: float, keep: int | None = None) -> PublishResult:
    iteration = service.iteration(project_id, iteration_ref)
    if iteration.status != "Completed":
        raise CvopsError(f"iteration {iteration.name} is {iteration.status}; only a Completed iteration can be published",
                         hint="wait for training (`cvops train --wait`) or pick another --iteration")
    result = PublishResult(iteration.id, iteration.name, publish_name, "published")
    perf = performance(service, project_id, iteration.id, threshold)
    result.gates = check_gates(gates, precision=perf["precision"], recall=perf["recall"],
                               mean_average_precision=perf["mean_average_precision"])
    if failed(result.gates):
        result.outcome = "refused"
        return result

    previous = service.published(project_id, publish_name)
    if previous is not None and previous.id == iteration.id:
        result.outcome = "already_published"
    else:
        resource_id = service.settings.require(config.PREDICTION_RESOURCE_ID)
        # overwrite=True moves the name in one call: the name is never without an iteration behind it.
        service.training_call(f"publish {iteration.name} as {publish_name!r}",
                              lambda c: c.publish_iteration(project_id, iteration.id, publish_name, resource_id,
                                                            overwrite=previous is not None))
        result.unpublished = previous.name if previous is not None else None

    if keep is not None:
        infos = [IterationInfo(it.id, it.name, it.status, it.created, it.publish_name or "")
                 for it in service.iterations(project_id)]
        for iteration_id in iterations_to_delete(infos, keep, protect=[iteration.id]):
            name = next(i.name for i in infos if i.id == iteration_id)
            service.training_call(f"delete iteration {name}", lambda c, i=iteration_id: c.delete_iteration(project_id, i))
            result.deleted.append(name)
    return result

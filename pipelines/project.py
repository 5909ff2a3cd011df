"""`cvops project apply`: read the service's state, plan (pure, plan.py), and carry out the plan.

Convergent by construction: every action is computed from the current state, so a second run plans nothing, and an
interrupted run is finished by running it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from azure.cognitiveservices.vision.customvision.training.models import Project, ProjectSettings, Tag

from pipelines.plan import Action, find_project, plan
from pipelines.service import Service
from pipelines.spec import ProjectSpec


@dataclass
class ApplyResult:
    project_id: str | None
    actions: list[Action]
    applied: bool
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.kind != "note"]

    def to_dict(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "applied": self.applied,
                "changes": [a.to_dict() for a in self.changes],
                "notes": [a.describe() for a in self.actions if a.kind == "note"]}


def apply(service: Service, spec: ProjectSpec, *, dry_run: bool = False) -> ApplyResult:
    domains = service.classification_domains()
    project = find_project(spec.name, service.projects())
    tags = []
    if project is not None:
        project = replace(project, image_count=service.image_count(project.id))
        tags = service.tags(project.id)
    actions = plan(spec, project, tags, domains)
    if dry_run:
        return ApplyResult(project.id if project else None, actions, applied=False)

    project_id = project.id if project else None
    for action in actions:
        if action.kind == "create_project":
            created = service.training_call(
                f"create project {spec.name!r}",
                lambda c: c.create_project(spec.name, description=spec.description or None,
                                                       domain_id=domains[spec.domain],
                                                       classification_type=spec.classification_type,
                                                       target_export_platforms=list(spec.export_platforms) or None),
                idempotent=False)
            project_id = created.id
        elif action.kind == "update_project":
            updated = Project(name=spec.name, description=spec.description,
                              settings=ProjectSettings(domain_id=domains[spec.domain],
                                                       classification_type=spec.classification_type,
                                                       target_export_platforms=list(spec.export_platforms) or None))
            service.training_call(f"update project {spec.name!r}", lambda c, u=updated, pid=project_id: c.update_project(pid, u))
        elif action.kind == "create_tag":
            tag = next(t for t in spec.tags if t.name == action.target)
            service.training_call(f"create tag {tag.name!r}",
                                  lambda c, t=tag, pid=project_id: c.create_tag(pid, t.name, description=t.description or None),
                                  idempotent=False)
        elif action.kind == "update_tag":
            tag = next(t for t in spec.tags if t.name == action.target)
            # The SDK's Tag model requires a type; keep the tag's own (Regular or Negative), which the spec does not set.
            current = service.training_call(f"get tag {tag.name!r}",
                                            lambda c, ref=action.ref, pid=project_id: c.get_tag(pid, ref))
            service.training_call(f"update tag {tag.name!r}",
                                  lambda c, t=tag, ref=action.ref, pid=project_id, kind=current.type: c.update_tag(
                                      pid, ref, Tag(name=t.name, description=t.description, type=kind)))
    return ApplyResult(project_id, actions, applied=True)

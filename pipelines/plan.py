"""`cvops project apply`: the difference between a spec and what the service holds, as a list of actions.

Pure: it takes the service's current state as plain data and returns what to do, so `--dry-run` prints exactly what
a real run would do, and the rules (never duplicate, never delete, refuse what the service cannot change) are tested
without a service. Tag names are matched ignoring case because the service treats them so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cvops.errors import ConfigurationError, CvopsError
from pipelines.spec import ProjectSpec


@dataclass(frozen=True)
class ProjectState:
    id: str
    name: str
    description: str
    domain_id: str
    classification_type: str | None
    export_platforms: tuple[str, ...]
    image_count: int


@dataclass(frozen=True)
class TagState:
    id: str
    name: str
    description: str
    image_count: int = 0


@dataclass(frozen=True)
class Action:
    """One change. ``kind``: create_project, update_project, create_tag, update_tag, note."""

    kind: str
    target: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    ref: str | None = None

    def describe(self) -> str:
        if self.kind == "note":
            return f"note: {self.target}: {self.changes.get('text', '')}"
        verb = {"create_project": "create project", "update_project": "update project",
                "create_tag": "create tag", "update_tag": "update tag"}[self.kind]
        detail = ", ".join(f"{k}: {_show(v)}" for k, v in self.changes.items())
        return f"{verb} {self.target!r}" + (f" ({detail})" if detail else "")

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.kind, "target": self.target, "changes": dict(self.changes)}


def _show(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]!r} -> {value[1]!r}"
    return repr(value)


def domain_id_for(name: str, domains: Mapping[str, str]) -> str:
    """The id of a classification domain by name, from GET /domains (name -> id)."""
    if name not in domains:
        raise ConfigurationError(f"the service offers no classification domain named {name!r}", setting="project.domain",
                                 hint=f"choose one of: {', '.join(sorted(domains))}")
    return domains[name]


def find_project(name: str, projects: Sequence[ProjectState]) -> ProjectState | None:
    """The one project with this name; two of them is an error, never a guess."""
    matches = [p for p in projects if p.name == name]
    if len(matches) > 1:
        ids = ", ".join(p.id for p in matches)
        raise CvopsError(f"{len(matches)} projects are named {name!r} ({ids})",
                         hint="rename or delete the extra ones in the Custom Vision portal; cvops will not guess")
    return matches[0] if matches else None


def plan(spec: ProjectSpec, project: ProjectState | None, tags: Sequence[TagState],
         domains: Mapping[str, str]) -> list[Action]:
    """Actions that make the service match the spec. Raises CvopsError for a change the service cannot make."""
    domain_id = domain_id_for(spec.domain, domains)
    actions: list[Action] = []
    if project is None:
        actions.append(Action("create_project", spec.name, {
            "description": spec.description, "domain": spec.domain, "classification_type": spec.classification_type,
            **({"export_platforms": list(spec.export_platforms)} if spec.export_platforms else {}),
        }))
        actions += [Action("create_tag", t.name, {"description": t.description} if t.description else {})
                    for t in spec.tags]
        return actions

    changes: dict[str, Any] = {}
    if (project.classification_type or "Multiclass") != spec.classification_type:
        if project.image_count:
            raise CvopsError(
                f"project {spec.name!r} is {project.classification_type} with {project.image_count} images; "
                f"the service cannot change it to {spec.classification_type}",
                hint="keep the classification type, or create a new project under another name and upload the images there")
        changes["classification_type"] = (project.classification_type, spec.classification_type)
    if project.domain_id != domain_id:
        names = {v: k for k, v in domains.items()}
        changes["domain"] = (names.get(project.domain_id, project.domain_id), spec.domain)
    if (project.description or "") != spec.description:
        changes["description"] = (project.description or "", spec.description)
    if spec.export_platforms and tuple(sorted(project.export_platforms)) != tuple(sorted(spec.export_platforms)):
        changes["export_platforms"] = (list(project.export_platforms), list(spec.export_platforms))
    if changes:
        actions.append(Action("update_project", spec.name, changes, ref=project.id))

    existing = {t.name.casefold(): t for t in tags}
    for tag in spec.tags:
        current = existing.pop(tag.name.casefold(), None)
        if current is None:
            actions.append(Action("create_tag", tag.name, {"description": tag.description} if tag.description else {}))
            continue
        tag_changes: dict[str, Any] = {}
        if current.name != tag.name:
            tag_changes["name"] = (current.name, tag.name)
        if (current.description or "") != tag.description:
            tag_changes["description"] = (current.description or "", tag.description)
        if tag_changes:
            actions.append(Action("update_tag", tag.name, tag_changes, ref=current.id))
    for extra in existing.values():
        actions.append(Action("note", extra.name, {
            "text": f"tag is in the project ({extra.image_count} images) but not in the spec; left alone"}))
    return actions

"""Domains (the service's fixed list) and projects: create, update (what may still change once images are tagged),
delete (with every image, iteration and prediction the project owns).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..exceptions import BadRequest, NotFound
from .base import BackendBase, new_id, now
from .exports import advertised_platforms
from .limits import CLASSIFICATION_TYPES, DEFAULT_DOMAIN_ID, EXPORT_PLATFORMS, MAX_PROJECTS


def advertised_domain(domain: dict[str, Any]) -> dict[str, Any]:
    """A domain as answered: exportable to what this service really produces from it (`exports.advertised_platforms`)."""
    platforms = advertised_platforms(domain)
    return {**domain, "exportable": bool(platforms), "exportablePlatforms": platforms}


class ProjectModels(BackendBase):
    """Domains and projects."""

    def get_domains(self) -> list[dict[str, Any]]:
        return [advertised_domain(d) for d in self.domains.values()]

    def get_domain(self, domain_id: str) -> dict[str, Any]:
        domain = self.domains.get(domain_id.lower())
        if domain is None:
            raise NotFound(f"Domain {domain_id} not found. GetDomains lists the valid ids.", code="NotFoundDomain")
        return advertised_domain(domain)

    def _project_json(self, row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "settings": {
                "domainId": row["domain_id"],
                "classificationType": row["classification_type"],
                "targetExportPlatforms": json.loads(row["target_export_platforms"]),
                "useNegativeSet": True,
                "imageProcessingSettings": {"augmentationMethods": {}},
            },
            "created": row["created"],
            "lastModified": row["last_modified"],
            "thumbnailUri": "",
            "drModeEnabled": False,
            # ImportProject answers at once and fills the project in the background (project_transfer.py).
            "status": getattr(self, "import_statuses", {}).get(row["id"], "Succeeded"),
        }

    def get_projects(self) -> list[dict[str, Any]]:
        return [self._project_json(r) for r in self.db.query("SELECT * FROM projects ORDER BY created, rowid")]

    def get_project(self, project_id: str) -> dict[str, Any]:
        return self._project_json(self._project_row(project_id))

    def _check_domain_settings(self, domain_id: str, classification_type: str | None,
                               platforms: Sequence[str]) -> tuple[dict[str, Any], str | None]:
        domain = self.domains.get(domain_id.lower())
        if domain is None:
            raise BadRequest(f"Domain {domain_id} is unknown; GetDomains lists the valid ids.",
                             code="BadRequestProjectUnknownDomain")
        if domain["type"] == "Classification":
            classification_type = classification_type or "Multiclass"
            if classification_type not in CLASSIFICATION_TYPES:
                raise BadRequest(f"classificationType {classification_type!r} is unknown; use Multiclass or Multilabel.",
                                 code="BadRequestProjectUnknownClassification")
        else:
            classification_type = None
        for p in platforms:
            if p not in EXPORT_PLATFORMS:
                raise BadRequest(f"Export platform {p!r} is unknown; use one of {', '.join(EXPORT_PLATFORMS)}.",
                                 code="BadRequestProjectUnsupportedExportPlatform")
            if p not in domain.get("exportablePlatforms", []):
                raise BadRequest(
                    f"Domain {domain['name']!r} cannot export to {p}; choose a compact domain to export models.",
                    code="BadRequestProjectUnsupportedExportPlatform")
        return domain, classification_type

    def create_project(self, name: str, description: str | None = None, domain_id: str | None = None,
                       classification_type: str | None = None,
                       target_export_platforms: Sequence[str] = ()) -> dict[str, Any]:
        name = (name or "").strip()
        if not name or len(name) > 256:
            raise BadRequest("Project name must be 1 to 256 characters.", code="BadRequestProjectName")
        if description is not None and len(description) > 4096:
            raise BadRequest("Project description may be at most 4096 characters.",
                             code="BadRequestProjectDescription")
        domain, ctype = self._check_domain_settings(domain_id or DEFAULT_DOMAIN_ID, classification_type,
                                                    target_export_platforms)
        description = description or ""  # the service answers "" (the SDK refuses a null description on update)
        project_id, t = new_id(), now()
        with self.db.transaction() as c:
            (count,) = c.execute("SELECT COUNT(*) FROM projects").fetchone()
            if count >= MAX_PROJECTS:
                raise BadRequest(f"This resource already has {count} projects, the S0 limit. Delete one first.",
                                 code="BadRequestExceedProjectLimit")
            if c.execute("SELECT 1 FROM projects WHERE name = ? COLLATE NOCASE", (name,)).fetchone():
                raise BadRequest(f"A project named {name!r} already exists. Choose another name.",
                                 code="BadRequestProjectNameNotUnique")
            c.execute(
                "INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (project_id, name, description, domain["id"], ctype, json.dumps(list(target_export_platforms)), t, t),
            )
        return self.get_project(project_id)

    def update_project(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        row = self._project_row(project_id)
        if not isinstance(body, dict):
            raise BadRequest("The body must be a Project object.", code="BadRequestInvalid")
        settings = body.get("settings") or {}
        name = body.get("name", row["name"])
        name = (name or "").strip()
        if not name or len(name) > 256:
            raise BadRequest("Project name must be 1 to 256 characters.", code="BadRequestProjectName")
        description = body.get("description", row["description"]) or ""
        domain_id = settings.get("domainId") or row["domain_id"]
        ctype = settings.get("classificationType") or row["classification_type"]
        platforms = settings.get("targetExportPlatforms")
        if platforms is None:
            platforms = json.loads(row["target_export_platforms"])
        domain, ctype = self._check_domain_settings(domain_id, ctype, platforms)
        old_domain = self.domains[row["domain_id"]]
        has_tagged = self.db.one(
            "SELECT 1 FROM image_tags it JOIN images i ON i.id = it.image_id WHERE i.project_id = ? LIMIT 1",
            (row["id"],)) is not None
        if domain["type"] != old_domain["type"]:
            raise BadRequest(
                f"The project's domain type is {old_domain['type']}; it cannot change to {domain['type']}. "
                "Create a new project instead.", code="BadRequestProjectUnsupportedDomainTypeChange")
        if ctype != row["classification_type"] and has_tagged:
            raise BadRequest(
                f"The project has tagged images, so its classificationType cannot change from "
                f"{row['classification_type']} to {ctype}. Create a new project, or remove the image tags first.",
                code="BadRequestProjectUnsupportedDomainTypeChange")
        with self.db.transaction() as c:
            if c.execute("SELECT 1 FROM projects WHERE name = ? COLLATE NOCASE AND id != ?",
                         (name, row["id"])).fetchone():
                raise BadRequest(f"A project named {name!r} already exists. Choose another name.",
                                 code="BadRequestProjectNameNotUnique")
            c.execute(
                "UPDATE projects SET name=?, description=?, domain_id=?, classification_type=?, "
                "target_export_platforms=?, last_modified=? WHERE id=?",
                (name, description, domain["id"], ctype, json.dumps(list(platforms)), now(), row["id"]),
            )
        return self.get_project(row["id"])

    def delete_project(self, project_id: str) -> None:
        row = self._project_row(project_id)
        published = self.db.one("SELECT name, publish_name FROM iterations WHERE project_id = ? AND publish_name != ''",
                                (row["id"],))
        if published is not None:
            raise BadRequest(
                f"Iteration {published['name']!r} is published as {published['publish_name']!r}; unpublish it before "
                "deleting the project.", code="BadRequestIterationIsPublished")
        image_ids = [r["id"] for r in self.db.query(
            "SELECT id FROM images WHERE project_id = ?1 UNION SELECT id FROM retired_images WHERE project_id = ?1",
            (row["id"],))]
        iteration_ids = [r["id"] for r in self.db.query("SELECT id FROM iterations WHERE project_id = ?", (row["id"],))]
        prediction_ids = [r["id"] for r in
                          self.db.query("SELECT id FROM predictions WHERE project_id = ?", (row["id"],))]
        with self.db.transaction() as c:
            c.execute("DELETE FROM projects WHERE id = ?", (row["id"],))
        for image_id in image_ids:
            self._delete_image_blobs(image_id)
        for iteration_id in iteration_ids:
            self._delete_iteration_blobs(iteration_id)
        for prediction_id in prediction_ids:
            self.blobs.delete(f"predictions/{prediction_id}")

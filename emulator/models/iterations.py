"""Iterations as records: list, get, rename, delete; and those a stopped process left in Training, marked Failed.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import BadRequest
from .base import BackendBase, now
from .exports import advertised_platforms, compact_stored

RESTART_REASON = "The local service stopped while this iteration was training. Train the project again."


class IterationModels(BackendBase):
    """Iterations: listing, renaming, deleting; and what a restart does to one that was training."""

    def _iteration_json(self, row) -> dict[str, Any]:
        domain = self.domains.get(row["domain_id"] or "", {})
        platforms = advertised_platforms(domain) if row["status"] == "Completed" else []
        if platforms and compact_stored(self.blobs, row["id"]) is None:
            platforms = []  # trained before compact models were stored: ExportIteration would refuse it
        return {
            "id": row["id"],
            "name": row["name"],
            "status": row["status"],
            "created": row["created"],
            "lastModified": row["last_modified"],
            "trainedAt": row["trained_at"],
            "projectId": row["project_id"],
            "exportable": bool(platforms),
            "exportableTo": platforms,
            "domainId": row["domain_id"],
            "classificationType": row["classification_type"],
            "trainingType": row["training_type"],
            "reservedBudgetInHours": row["reserved_budget_in_hours"],
            "trainingTimeInMinutes": row["training_time_in_minutes"],
            "publishName": row["publish_name"],
            "originalPublishResourceId": row["publish_resource_id"],
            **({"trainingErrorDetails": row["training_error_details"]} if row["training_error_details"] else {}),
        }

    def get_iterations(self, project_id: str) -> list[dict[str, Any]]:
        project = self._project_row(project_id)
        rows = self.db.query("SELECT * FROM iterations WHERE project_id = ? ORDER BY created, rowid", (project["id"],))
        return [self._iteration_json(r) for r in rows]

    def get_iteration(self, project_id: str, iteration_id: str) -> dict[str, Any]:
        project = self._project_row(project_id)
        return self._iteration_json(self._iteration_row(project["id"], iteration_id))

    def update_iteration(self, project_id: str, iteration_id: str, body: dict[str, Any]) -> dict[str, Any]:
        project = self._project_row(project_id)
        row = self._iteration_row(project["id"], iteration_id)
        name = (body.get("name") if isinstance(body, dict) else None) or ""
        name = name.strip()
        if not name or len(name) > 256:
            raise BadRequest("Iteration name must be 1 to 256 characters.", code="BadRequestIterationName")
        with self.db.transaction() as c:
            if c.execute("SELECT 1 FROM iterations WHERE project_id = ? AND name = ? COLLATE NOCASE AND id != ?",
                         (project["id"], name, row["id"])).fetchone():
                raise BadRequest(f"Another iteration is already named {name!r}.",
                                 code="BadRequestIterationNameNotUnique")
            c.execute("UPDATE iterations SET name = ?, last_modified = ? WHERE id = ?", (name, now(), row["id"]))
        return self.get_iteration(project["id"], row["id"])

    def delete_iteration(self, project_id: str, iteration_id: str) -> None:
        project = self._project_row(project_id)
        row = self._iteration_row(project["id"], iteration_id)
        if row["publish_name"]:
            raise BadRequest(f"Iteration {row['name']!r} is published as {row['publish_name']!r}; unpublish it first.",
                             code="BadRequestIterationIsPublished")
        if row["status"] == "Training":
            raise BadRequest(f"Iteration {row['name']!r} is still training; wait until it completes.",
                             code="BadRequestTrainingAlreadyInProgress")
        self.db.execute("DELETE FROM iterations WHERE id = ?", (row["id"],))
        self._delete_iteration_blobs(row["id"])
        self._drop_unused_retired_images(project["id"])

    def _fail_interrupted_training(self) -> None:
        self.db.execute(
            "UPDATE iterations SET status = 'Failed', training_error_details = ?, last_modified = ? "
            "WHERE status = 'Training'", (RESTART_REASON, now()))

"""Tags of a project: names unique in it, at most one Negative tag, the S0 count limit; and the tags as an iteration
saw them, when asked with iterationId.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import BadRequest, not_found_tag
from .base import BackendBase, new_id, now
from .limits import MAX_TAGS_PER_PROJECT, TAG_TYPES


class TagModels(BackendBase):
    """A project's tags, now or as an iteration saw them."""

    def _tag_row(self, project_id: str, tag_id: str):
        row = self.db.one("SELECT * FROM tags WHERE id = ? AND project_id = ?", (tag_id.lower(), project_id))
        if row is None:
            raise not_found_tag(tag_id)
        return row

    def _tag_json(self, row) -> dict[str, Any]:
        (count,) = self.db.one("SELECT COUNT(*) FROM image_tags WHERE tag_id = ?", (row["id"],))
        return {"id": row["id"], "name": row["name"], "description": row["description"], "type": row["type"],
                "imageCount": count}

    def get_tags(self, project_id: str, iteration_id: str | None = None) -> list[dict[str, Any]]:
        project = self._project_row(project_id)
        if iteration_id:
            snapshot = self._iteration_snapshot(project["id"], iteration_id)
            return [
                {"id": t, "name": n, "description": d, "type": ty, "imageCount": c}
                for t, n, d, ty, c in zip(snapshot["tagIds"], snapshot["tagNames"], snapshot["tagDescriptions"],
                                          snapshot["tagTypes"], snapshot["imageCounts"], strict=True)
            ]
        rows = self.db.query("SELECT * FROM tags WHERE project_id = ? ORDER BY created, rowid", (project["id"],))
        return [self._tag_json(r) for r in rows]

    def get_tag(self, project_id: str, tag_id: str, iteration_id: str | None = None) -> dict[str, Any]:
        project = self._project_row(project_id)
        if iteration_id:
            for tag in self.get_tags(project["id"], iteration_id):
                if tag["id"] == tag_id.lower():
                    return tag
            raise not_found_tag(tag_id)
        return self._tag_json(self._tag_row(project["id"], tag_id))

    def _check_tag_fields(self, name: str, description: str | None, tag_type: str) -> str:
        name = (name or "").strip()
        if not name or len(name) > 256:
            raise BadRequest("Tag name must be 1 to 256 characters.", code="BadRequestTagName")
        if description is not None and len(description) > 4096:
            raise BadRequest("Tag description may be at most 4096 characters.", code="BadRequestTagDescription")
        if tag_type not in TAG_TYPES:
            raise BadRequest(f"Tag type {tag_type!r} is unknown; use Regular or Negative.", code="BadRequestTagType")
        return name

    def create_tag(self, project_id: str, name: str, description: str | None = None,
                   tag_type: str | None = None) -> dict[str, Any]:
        project = self._project_row(project_id)
        tag_type = tag_type or "Regular"
        name = self._check_tag_fields(name, description, tag_type)
        if tag_type == "GeneralProduct" and self.domains[project["domain_id"]]["type"] != "ObjectDetection":
            raise BadRequest("GeneralProduct tags exist only in object detection projects.", code="BadRequestTagType")
        description = description or ""
        tag_id = new_id()
        with self.db.transaction() as c:
            if c.execute("SELECT 1 FROM tags WHERE project_id = ? AND name = ? COLLATE NOCASE",
                         (project["id"], name)).fetchone():
                raise BadRequest(f"A tag named {name!r} already exists in this project.",
                                 code="BadRequestTagNameNotUnique")
            (count,) = c.execute("SELECT COUNT(*) FROM tags WHERE project_id = ?", (project["id"],)).fetchone()
            if count >= MAX_TAGS_PER_PROJECT:
                raise BadRequest(f"The project already has {count} tags, the S0 limit.",
                                 code="BadRequestExceedTagPerProjectLimit")
            if tag_type == "Negative" and c.execute(
                    "SELECT 1 FROM tags WHERE project_id = ? AND type = 'Negative'", (project["id"],)).fetchone():
                raise BadRequest("The project already has a Negative tag; a project can have only one.",
                                 code="BadRequestMultipleNegativeTag")
            c.execute("INSERT INTO tags VALUES (?, ?, ?, ?, ?, ?)",
                      (tag_id, project["id"], name, description, tag_type, now()))
            self._touch(c, project["id"])
        return self.get_tag(project["id"], tag_id)

    def update_tag(self, project_id: str, tag_id: str, body: dict[str, Any]) -> dict[str, Any]:
        project = self._project_row(project_id)
        row = self._tag_row(project["id"], tag_id)
        if not isinstance(body, dict):
            raise BadRequest("The body must be a Tag object.", code="BadRequestInvalid")
        name = self._check_tag_fields(body.get("name", row["name"]), body.get("description", row["description"]),
                                      body.get("type") or row["type"])
        tag_type = body.get("type") or row["type"]
        with self.db.transaction() as c:
            if c.execute("SELECT 1 FROM tags WHERE project_id = ? AND name = ? COLLATE NOCASE AND id != ?",
                         (project["id"], name, row["id"])).fetchone():
                raise BadRequest(f"A tag named {name!r} already exists in this project.",
                                 code="BadRequestTagNameNotUnique")
            if tag_type == "Negative" and row["type"] != "Negative" and c.execute(
                    "SELECT 1 FROM tags WHERE project_id = ? AND type = 'Negative'", (project["id"],)).fetchone():
                raise BadRequest("The project already has a Negative tag; a project can have only one.",
                                 code="BadRequestMultipleNegativeTag")
            c.execute("UPDATE tags SET name = ?, description = ?, type = ? WHERE id = ?",
                      (name, body.get("description", row["description"]) or "", tag_type, row["id"]))
            self._touch(c, project["id"])
        return self.get_tag(project["id"], row["id"])

    def delete_tag(self, project_id: str, tag_id: str) -> None:
        project = self._project_row(project_id)
        row = self._tag_row(project["id"], tag_id)
        with self.db.transaction() as c:
            c.execute("DELETE FROM tags WHERE id = ?", (row["id"],))
            self._touch(c, project["id"])

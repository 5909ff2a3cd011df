"""What every part of the backend shares: the storage and learning code it runs on, ids and timestamps, row
lookups that answer NotFound, the one decode an image gets, and where bytes live in the blob store (so a record's
bytes are deleted the same way from every module).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from .. import images as imagelib
from ..exceptions import BadRequest, NotFound, not_found_iteration, not_found_project
from ..learning_interface import Learning
from ..store import Storage
from .limits import MAX_TAKE


def now() -> str:
    """UTC time as the service writes it: ISO 8601 with milliseconds and a Z."""
    t = datetime.now(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def new_id() -> str:
    return str(uuid.uuid4())


def load_domains() -> list[dict[str, Any]]:
    """The real domains (ids and names as the Azure service lists them), from emulator/data/domains.json."""
    return json.loads(resources.files("emulator").joinpath("data/domains.json").read_text(encoding="utf-8"))


class BackendBase:
    """State of one service instance, and the lookups and storage layout every model module uses."""

    def __init__(self, storage: Storage, learning: Learning, *, base_url_hint: str = "") -> None:
        self.storage = storage
        self.db = storage.db
        self.blobs = storage.blobs
        self.learning = learning
        self.domains = {d["id"]: d for d in load_domains()}
        self._model_cache: dict[str, tuple[Any, dict[str, list[str]]]] = {}  # iteration id -> (model, its tags)
        self._model_lock = threading.Lock()
        self._submit_training = None  # set by the training worker

    def _project_row(self, project_id: str):
        row = self.db.one("SELECT * FROM projects WHERE id = ?", (project_id.lower(),))
        if row is None:
            raise not_found_project(project_id)
        return row

    @staticmethod
    def _touch(c, project_id: str) -> None:
        c.execute("UPDATE projects SET last_modified = ? WHERE id = ?", (now(), project_id))

    def _iteration_row(self, project_id: str, iteration_id: str):
        row = self.db.one("SELECT * FROM iterations WHERE id = ? AND project_id = ?",
                          (iteration_id.lower(), project_id))
        if row is None:
            raise not_found_iteration(iteration_id)
        return row

    def _completed_iteration(self, project_id: str, iteration_id: str):
        row = self._iteration_row(project_id, iteration_id)
        if row["status"] != "Completed":
            raise BadRequest(f"Iteration {row['name']!r} is {row['status']}, not Completed.",
                             code="BadRequestIterationIsNotTrained")
        return row

    def _iteration_snapshot(self, project_id: str, iteration_id: str) -> dict[str, Any]:
        row = self._iteration_row(project_id, iteration_id)
        snapshot = self.blobs.get_json(f"iterations/{row['id']}/snapshot.json")
        if snapshot is None:
            raise NotFound(f"Iteration {iteration_id} has no stored training data.", code="NotFoundIteration")
        return snapshot

    @staticmethod
    def _check_page(take: int, skip: int) -> None:
        if take < 0 or take > MAX_TAKE or skip < 0:
            raise BadRequest(f"take must be 0 to {MAX_TAKE} and skip at least 0.", code="BadRequest")

    def _decode(self, data: bytes, max_bytes: int) -> imagelib.DecodedImage:
        """Check an image and decode it once, at the smallest scale the features can use (ImageRejected if refused).

        When the learning code cannot be loaded the checks still run, on a full decode: uploads keep working, and
        training says what is wrong.
        """
        try:
            reduce_to = self.learning.decode_size
        except (ImportError, AttributeError):
            reduce_to = None
        return imagelib.decode_image(data, max_bytes=max_bytes, reduce_to=reduce_to)

    def _feature_key(self, image_id: str, *, mirrored: bool = False) -> str:
        version = re.sub(r"[^A-Za-z0-9_.\-]", "_", self.learning.feature_version)
        return f"features/{version}/{'mirrored/' if mirrored else ''}{image_id}.npy"

    def _delete_image_blobs(self, image_id: str) -> None:
        self.blobs.delete(f"images/{image_id}")
        with contextlib.suppress(ImportError, AttributeError):
            self.blobs.delete(self._feature_key(image_id))
            self.blobs.delete(self._feature_key(image_id, mirrored=True))

    def _delete_orphan_image_blobs(self, image_ids: Sequence[str]) -> None:
        """Remove the bytes of images deleted while a training job needed them (see `_images_in_training`)."""
        kept = {r["id"] for r in self.db.query(
            "SELECT id FROM images WHERE id IN (SELECT value FROM json_each(?1)) "
            "UNION SELECT id FROM retired_images WHERE id IN (SELECT value FROM json_each(?1))",
            (json.dumps(list(image_ids)),))}
        for image_id in image_ids:
            if image_id not in kept:
                self._delete_image_blobs(image_id)

    def _iteration_image_ids(self, c, project_id: str) -> set[str]:
        """Ids of every image some iteration of the project trained (or is training) on, from their snapshots."""
        out: set[str] = set()
        for (iteration_id,) in c.execute("SELECT id FROM iterations WHERE project_id = ?", (project_id,)).fetchall():
            snapshot = self.blobs.get_json(f"iterations/{iteration_id}/snapshot.json") or {}
            out.update(snapshot.get("imageIds", []))
        return out

    def _drop_unused_retired_images(self, project_id: str) -> None:
        """Forget the retired images (deleted from the workspace) that no remaining iteration has, with their bytes."""
        with self.db.transaction() as c:
            used = self._iteration_image_ids(c, project_id)
            gone = [r["id"] for r in c.execute("SELECT id FROM retired_images WHERE project_id = ?", (project_id,))
                    if r["id"] not in used]
            c.execute("DELETE FROM retired_images WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(gone),))
        for image_id in gone:
            self._delete_image_blobs(image_id)

    def _delete_iteration_blobs(self, iteration_id: str) -> None:
        for record in self.blobs.get_json(f"iterations/{iteration_id}/exports.json") or []:
            self.blobs.delete(f"exports/{record['token']}.zip")  # its downloadUri stops answering, as Azure's expire
        for name in ("snapshot.json", "model.json", "oof.npy", "folds.npy", "exports.json"):
            self.blobs.delete(f"iterations/{iteration_id}/{name}")
        with self._model_lock:
            self._model_cache.pop(iteration_id, None)

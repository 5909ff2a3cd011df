"""TrainProject: what it checks, the snapshot of tags and images an iteration trains on, the job it hands the worker
(`emulator.training_worker`), and how the worker's outcome is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import BadRequest, not_found_tag
from .base import new_id, now
from .iterations import IterationModels
from .limits import EMAIL, MAX_ITERATIONS_PER_PROJECT, MIN_IMAGES_PER_TAG


def training_fingerprint(classification_type: str, tag_ids: Sequence[str], pairs: Iterable[tuple[str, str]]) -> str:
    """What a training run would learn from; equal fingerprints mean "nothing new since the last iteration"."""
    h = hashlib.sha256(classification_type.encode())
    for t in sorted(tag_ids):
        h.update(b"t" + t.encode())
    for image_id, tag_id in sorted(pairs):
        h.update(b"p" + image_id.encode() + tag_id.encode())
    return h.hexdigest()


@dataclass
class TrainingJob:
    """Everything the worker needs, captured when TrainProject is called so later edits cannot leak in."""

    project_id: str
    iteration_id: str
    classification_type: str
    tag_ids: list[str]
    image_ids: list[str]
    labels: list[list[int]]
    advanced: bool
    budget_seconds: float
    domain_id: str = ""  # a compact domain trains the ONNX graph's features (emulator.compact_model)
    tag_names: list[str] = field(default_factory=list)


class TrainingJobModels(IterationModels):
    """Starting training, and recording what the worker did."""

    def train_project(self, project_id: str, *, training_type: str | None = None, reserved_budget_in_hours: int = 0,
                      force_train: bool = False, notification_email_address: str | None = None,
                      selected_tags: Sequence[str] | None = None) -> dict[str, Any]:
        project = self._project_row(project_id)
        pid = project["id"]
        training_type = training_type or "Regular"
        if training_type not in ("Regular", "Advanced"):
            raise BadRequest(f"trainingType {training_type!r} is unknown; use Regular or Advanced.",
                             code="BadRequestInvalid")
        if self.domains[project["domain_id"]]["type"] != "Classification":
            raise BadRequest("The local service trains classification projects only, not object detection.",
                             code="BadRequestNotSupported")
        if notification_email_address and not EMAIL.match(notification_email_address):
            raise BadRequest(f"{notification_email_address!r} is not an email address.",
                             code="BadRequestInvalidEmailAddress")
        if training_type == "Advanced" and reserved_budget_in_hours < 1:
            raise BadRequest("Advanced training needs reservedBudgetInHours of at least 1.",
                             code="BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining")
        if reserved_budget_in_hours < 0:
            raise BadRequest("reservedBudgetInHours cannot be negative.", code="BadRequestInvalid")
        ctype = project["classification_type"] or "Multiclass"
        iteration_id = new_id()
        # One transaction from reading the tags to recording the snapshot: an image deleted or tagged meanwhile is
        # either in this iteration or not, never half (DeleteImages keeps the bytes of images a job will read).
        with self.db.transaction() as c:
            snapshot, fingerprint = self._training_snapshot(c, pid, ctype, selected_tags)
            if c.execute("SELECT 1 FROM iterations WHERE project_id = ? AND status = 'Training'", (pid,)).fetchone():
                raise BadRequest("The project is already training; wait for that iteration to finish.",
                                 code="BadRequestTrainingAlreadyInProgress")
            last = c.execute("SELECT fingerprint FROM iterations WHERE project_id = ? AND status = 'Completed' "
                             "ORDER BY created DESC, rowid DESC LIMIT 1", (pid,)).fetchone()
            if last is not None and last["fingerprint"] == fingerprint and not force_train:
                raise BadRequest("Nothing changed since the last trained iteration; pass forceTrain=true to train "
                                 "anyway.", code="BadRequestTrainingNotNeeded")
            (count,) = c.execute("SELECT COUNT(*) FROM iterations WHERE project_id = ?", (pid,)).fetchone()
            if count >= MAX_ITERATIONS_PER_PROJECT:
                raise BadRequest(f"The project already has {count} iterations, the limit; delete an old unpublished "
                                 "iteration first.", code="BadRequestExceedIterationPerProjectLimit")
            numbers = [int(m.group(1)) for (n,) in c.execute("SELECT name FROM iterations WHERE project_id = ?",
                                                              (pid,)).fetchall()
                       if (m := re.fullmatch(r"Iteration (\d+)", n))]
            name = f"Iteration {max(numbers, default=0) + 1}"
            t = now()
            c.execute(
                "INSERT INTO iterations (id, project_id, name, status, created, last_modified, domain_id, "
                "classification_type, training_type, reserved_budget_in_hours, fingerprint, selected_tags) "
                "VALUES (?, ?, ?, 'Training', ?, ?, ?, ?, ?, ?, ?, ?)",
                (iteration_id, pid, name, t, t, project["domain_id"], ctype, training_type,
                 reserved_budget_in_hours, fingerprint, json.dumps(snapshot["tagIds"] if selected_tags else None)),
            )
            self.blobs.put_json(f"iterations/{iteration_id}/snapshot.json", snapshot)
        job = TrainingJob(pid, iteration_id, ctype, snapshot["tagIds"], snapshot["imageIds"], snapshot["labels"],
                          advanced=training_type == "Advanced",
                          budget_seconds=advanced_budget_seconds(reserved_budget_in_hours)
                          if training_type == "Advanced" else 0.0,
                          domain_id=project["domain_id"] or "", tag_names=list(snapshot["tagNames"]))
        if self._submit_training is None:
            raise RuntimeError("no training worker attached")
        self._submit_training(job)
        return self.get_iteration(pid, iteration_id)

    def _training_snapshot(self, c, pid: str, ctype: str,
                           selected_tags: Sequence[str] | None) -> tuple[dict[str, Any], str]:
        """What an iteration trains on (tags, images, labels) and its fingerprint; BadRequest when it cannot train."""
        tags = c.execute("SELECT * FROM tags WHERE project_id = ? ORDER BY created, rowid", (pid,)).fetchall()
        if selected_tags:
            wanted = {t.lower() for t in selected_tags}
            unknown = wanted - {t["id"] for t in tags}
            if unknown:
                raise not_found_tag(sorted(unknown)[0])
            tags = [t for t in tags if t["id"] in wanted]
        tag_ids = [t["id"] for t in tags]
        pairs = [(r["image_id"], r["tag_id"]) for r in c.execute(
            "SELECT it.image_id, it.tag_id FROM image_tags it JOIN images i ON i.id = it.image_id "
            "WHERE i.project_id = ? AND it.tag_id IN (SELECT value FROM json_each(?))",
            (pid, json.dumps(tag_ids))).fetchall()]
        counts = {t: 0 for t in tag_ids}
        for _, t in pairs:
            counts[t] += 1
        names = {t["id"]: t["name"] for t in tags}
        with_images = len([t for t in tag_ids if counts[t] > 0])
        if with_images < 2 and not (ctype == "Multilabel" and with_images):
            raise BadRequest(
                f"Training needs at least 2 tags with images (found {with_images}). Add images for a second tag.",
                code="BadRequestClassificationTrainingValidationFailed")
        short = [f"{names[t]!r} ({counts[t]})" for t in tag_ids if counts[t] < MIN_IMAGES_PER_TAG]
        if short:
            raise BadRequest(
                f"Every tag needs at least {MIN_IMAGES_PER_TAG} images to train; too few in tag(s) "
                f"{', '.join(short)}. Add images, or leave the tag out with selectedTags.",
                code="BadRequestTrainingValidationFailed")
        per_image: dict[str, list[int]] = {}
        index = {t: n for n, t in enumerate(tag_ids)}
        for image_id, tag_id in pairs:
            per_image.setdefault(image_id, []).append(index[tag_id])
        if ctype == "Multiclass":
            multi = [i for i, ls in per_image.items() if len(ls) > 1]
            if multi:
                raise BadRequest(
                    f"{len(multi)} image(s) have more than one tag (e.g. {multi[0]}), which a Multiclass project "
                    "cannot learn. Keep one tag per image, or make the project Multilabel.",
                    code="BadRequestMultiClassClassificationTrainingValidationFailed")
        image_ids = sorted(per_image)
        snapshot = {
            "tagIds": tag_ids,
            "tagNames": [t["name"] for t in tags],
            "tagDescriptions": [t["description"] for t in tags],
            "tagTypes": [t["type"] for t in tags],
            "imageCounts": [counts[t] for t in tag_ids],
            "imageIds": image_ids,
            "labels": [sorted(per_image[i]) for i in image_ids],
            "classificationType": ctype,
        }
        return snapshot, training_fingerprint(ctype, tag_ids, pairs)

    def finish_training(self, job: TrainingJob, *, model: dict | None, oof: np.ndarray | None,
                        folds: np.ndarray | None, settings: dict | None, error: str | None,
                        elapsed_seconds: float) -> None:
        """Record the outcome of a training job (called by the worker), then drop the bytes of images that were
        deleted while the job needed them."""
        try:
            self._record_training(job, model=model, oof=oof, folds=folds, settings=settings, error=error,
                                  elapsed_seconds=elapsed_seconds)
        finally:
            self._delete_orphan_image_blobs(job.image_ids)
            if self.db.one("SELECT 1 FROM iterations WHERE id = ?", (job.iteration_id,)) is None:
                self._delete_iteration_blobs(job.iteration_id)  # the project was deleted while it trained

    def _record_training(self, job: TrainingJob, *, model: dict | None, oof: np.ndarray | None,
                         folds: np.ndarray | None, settings: dict | None, error: str | None,
                         elapsed_seconds: float) -> None:
        minutes = max(1, int(np.ceil(elapsed_seconds / 60.0)))
        if error is None and model is not None and oof is not None and folds is not None:
            try:
                self.blobs.put_json(f"iterations/{job.iteration_id}/model.json", model)
                self.blobs.put_array(f"iterations/{job.iteration_id}/oof.npy", np.asarray(oof, dtype=np.float32))
                self.blobs.put_array(f"iterations/{job.iteration_id}/folds.npy", np.asarray(folds, dtype=np.int32))
                snapshot = self.blobs.get_json(f"iterations/{job.iteration_id}/snapshot.json") or {}
                snapshot["settings"] = settings or {}
                self.blobs.put_json(f"iterations/{job.iteration_id}/snapshot.json", snapshot)
            except OSError as exc:  # e.g. a full disk under --data-dir: the iteration fails, the project can retrain
                error = f"The trained model could not be stored ({exc}). Free space in the data directory and train again."
            else:
                t = now()
                self.db.execute(
                    "UPDATE iterations SET status = 'Completed', trained_at = ?, last_modified = ?, "
                    "training_time_in_minutes = ? WHERE id = ? AND status = 'Training'",
                    (t, t, minutes, job.iteration_id))
                return
        self.db.execute(
            "UPDATE iterations SET status = 'Failed', training_error_details = ?, last_modified = ?, "
            "training_time_in_minutes = ? WHERE id = ? AND status = 'Training'",
            (error or "Training failed.", now(), minutes, job.iteration_id))


# Advanced training's reserved budget, scaled for a local machine: 1 budget hour = 1 minute of wall time at most.
SECONDS_PER_BUDGET_HOUR = 60.0


def advanced_budget_seconds(reserved_budget_in_hours: int) -> float:
    return max(0, reserved_budget_in_hours) * SECONDS_PER_BUDGET_HOUR

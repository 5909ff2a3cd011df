"""Evaluation of a completed iteration from its stored out-of-fold probabilities: overall and per-tag performance at
any threshold, and per-image performances.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..exceptions import BadRequest, NotFound
from .base import BackendBase
from .predictions import ranked_predictions


class PerformanceModels(BackendBase):
    """Iteration and image performances."""

    def _evaluation(self, iteration_id: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        snapshot = self.blobs.get_json(f"iterations/{iteration_id}/snapshot.json")
        oof = self.blobs.get_array(f"iterations/{iteration_id}/oof.npy")
        folds = self.blobs.get_array(f"iterations/{iteration_id}/folds.npy")
        if snapshot is None or oof is None or folds is None:
            raise NotFound("This iteration has no stored performance data.", code="NotFoundIterationPerformance")
        return snapshot, oof, folds

    def get_iteration_performance(self, project_id: str, iteration_id: str, threshold: float = 0.5,
                                  overlap_threshold: float | None = None) -> dict[str, Any]:
        project = self._project_row(project_id)
        row = self._completed_iteration(project["id"], iteration_id)
        if not 0.0 <= threshold <= 1.0 or (overlap_threshold is not None and not 0.0 <= overlap_threshold <= 1.0):
            raise BadRequest("threshold and overlapThreshold must be between 0 and 1.", code="BadRequestInvalid")
        snapshot, oof, folds = self._evaluation(row["id"])
        perf = self.learning.performance(oof, snapshot["labels"], folds, threshold)
        per_tag = []
        for tag_id, name, p in zip(snapshot["tagIds"], snapshot["tagNames"], perf["perTag"], strict=True):
            per_tag.append({
                "id": tag_id, "name": name,
                "precision": float(p["precision"]), "precisionStdDeviation": float(p["precisionStdDeviation"]),
                "recall": float(p["recall"]), "recallStdDeviation": float(p["recallStdDeviation"]),
                "averagePrecision": _maybe_float(p.get("averagePrecision")),
            })
        return {
            "perTagPerformance": per_tag,
            "precision": float(perf["precision"]), "precisionStdDeviation": float(perf["precisionStdDeviation"]),
            "recall": float(perf["recall"]), "recallStdDeviation": float(perf["recallStdDeviation"]),
            "averagePrecision": _maybe_float(perf.get("averagePrecision")),
        }

    def _image_performance_rows(self, project_id: str, iteration_id: str, tag_ids: Sequence[str]):
        """(snapshot, out-of-fold probabilities, chosen rows, image rows by id) of an iteration's image performances.

        Chosen are the iteration's images carrying any of `tag_ids` (all when none) that the iteration still has: in
        the workspace, or deleted from it without `allIterations` (retired). An image deleted with `allIterations` has
        left every iteration; count and list must agree for paging to work.
        """
        row = self._completed_iteration(project_id, iteration_id)
        snapshot, oof, _ = self._evaluation(row["id"])
        wanted = {snapshot["tagIds"].index(t.lower()) for t in tag_ids if t.lower() in snapshot["tagIds"]}
        if tag_ids and not wanted:
            return snapshot, oof, [], {}
        chosen = [n for n, labels in enumerate(snapshot["labels"]) if not tag_ids or wanted & set(labels)]
        ids = [snapshot["imageIds"][n] for n in chosen]
        rows = {r["id"]: r for r in self.db.query(
            "SELECT * FROM images WHERE project_id = ?1 AND id IN (SELECT value FROM json_each(?2)) UNION ALL "
            "SELECT * FROM retired_images WHERE project_id = ?1 AND id IN (SELECT value FROM json_each(?2))",
            (project_id, json.dumps(ids)))}
        return snapshot, oof, [n for n in chosen if snapshot["imageIds"][n] in rows], rows

    def count_image_performances(self, project_id: str, iteration_id: str, tag_ids: Sequence[str] = ()) -> int:
        project = self._project_row(project_id)
        return len(self._image_performance_rows(project["id"], iteration_id, tag_ids)[2])

    def get_image_performances(self, project_id: str, iteration_id: str, tag_ids: Sequence[str] = (),
                               order_by: str | None = None, take: int = 50, skip: int = 0,
                               base_url: str = "") -> list[dict[str, Any]]:
        project = self._project_row(project_id)
        self._check_page(take, skip)
        snapshot, oof, present, rows = self._image_performance_rows(project["id"], iteration_id, tag_ids)
        present.sort(key=lambda n: (rows[snapshot["imageIds"][n]]["created"], n), reverse=order_by != "Oldest")
        out = []
        for n in present[skip:skip + take]:
            r = rows[snapshot["imageIds"][n]]
            uri = f"{base_url}/customvision/local/images/{project['id']}/{r['id']}"
            out.append({
                "predictions": ranked_predictions(snapshot, oof[n]),
                "id": r["id"], "created": r["created"], "width": r["width"], "height": r["height"],
                "imageUri": f"{uri}/original", "thumbnailUri": f"{uri}/thumbnail",
                "tags": [{"tagId": snapshot["tagIds"][k], "tagName": snapshot["tagNames"][k], "created": r["created"]}
                         for k in snapshot["labels"][n]],
                "regions": None,
            })
        return out


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)

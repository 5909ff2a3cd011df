"""Predictions: quick tests (training API) and classify calls (prediction API), each on one decode of the image with
the iteration's model and tags loaded once; and stored predictions, queried and deleted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import images as imagelib
from ..exceptions import BadRequest, NotFound
from .base import BackendBase, new_id, now
from .prediction_query import answer_token, parse_prediction_query, within_thresholds

_COMPACT_FEATURE_VERSION = "onnx-compact-2"  # emulator.compact_model.FEATURE_VERSION, checked by its tests


def ranked_predictions(snapshot: dict[str, Any], probabilities: np.ndarray) -> list[dict[str, Any]]:
    """The answer's `predictions`: every tag of the iteration (`snapshot` holds their ids, names and types in the
    model's order) with its probability, most probable first."""
    order = np.argsort(-np.asarray(probabilities, dtype=np.float64), kind="stable")
    return [{"probability": float(probabilities[k]), "tagId": snapshot["tagIds"][k],
             "tagName": snapshot["tagNames"][k], "tagType": snapshot["tagTypes"][k]} for k in order]


class PredictionModels(BackendBase):
    """Quick tests, classification, and stored predictions."""

    def _predictor(self, iteration_id: str) -> tuple[Any, dict[str, list[str]]]:
        """The model of a completed iteration and its tags (ids, names, types in the model's order), loaded once.

        Both are fixed once the iteration completes, and the snapshot they come from lists every training image:
        parsing it on each call would cost more than the prediction on a large project.
        """
        with self._model_lock:
            cached = self._model_cache.get(iteration_id)
        if cached is None:
            data = self.blobs.get_json(f"iterations/{iteration_id}/model.json")
            snapshot = self.blobs.get_json(f"iterations/{iteration_id}/snapshot.json")
            if data is None or snapshot is None:
                raise NotFound("The model of this iteration is missing.", code="ErrorPredictionModelNotFound")
            tags = {k: snapshot[k] for k in ("tagIds", "tagNames", "tagTypes")}
            if data.get("featureVersion") == _COMPACT_FEATURE_VERSION:  # a compact domain's ONNX graph
                from ..compact_model import CompactPredictor

                cached = (CompactPredictor(data), tags)
            else:
                cached = (self.learning.model_from_json(data), tags)
            with self._model_lock:
                self._model_cache[iteration_id] = cached
        return cached

    def _predict(self, project_id: str, iteration, image: imagelib.DecodedImage, *, store: bool,
                 application: str | None, base_url: str) -> dict[str, Any]:
        model, tags = self._predictor(iteration["id"])
        if hasattr(model, "predict_image"):  # the whole ONNX graph, on the image decoded as an export's user would
            probabilities = np.asarray(model.predict_image(image.data), dtype=np.float64)
        else:
            features = np.asarray(self.learning.features_of_image(image.pixels), dtype=np.float32)
            probabilities = np.asarray(model.predict_proba(features[None, :]))[0]
        prediction = {
            "id": new_id(), "project": project_id, "iteration": iteration["id"], "created": now(),
            "predictions": ranked_predictions(tags, probabilities),
        }
        if store:
            self.blobs.put(f"predictions/{prediction['id']}", image.data)
            self.db.execute("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (prediction["id"], project_id, iteration["id"], iteration["domain_id"],
                             prediction["created"], application, json.dumps(prediction["predictions"])))
        return prediction

    def quick_test(self, project_id: str, data: bytes, *, iteration_id: str | None = None, store: bool = True,
                   base_url: str = "") -> dict[str, Any]:
        project = self._project_row(project_id)
        if iteration_id:
            row = self._completed_iteration(project["id"], iteration_id)
        else:
            row = self.db.one("SELECT * FROM iterations WHERE project_id = ? AND status = 'Completed' "
                              "ORDER BY created DESC, rowid DESC LIMIT 1", (project["id"],))
            if row is None:
                raise NotFound("The project has no trained iteration to test; train it first.",
                               code="NotFoundProjectDefaultIteration")
        image = self._check_prediction_image(data, imagelib.MAX_TRAINING_IMAGE_BYTES)
        return self._predict(project["id"], row, image, store=store, application=None, base_url=base_url)

    def _check_prediction_image(self, data: bytes, max_bytes: int) -> imagelib.DecodedImage:
        """The image decoded once for the checks and the features; BadRequest with the prediction API's codes."""
        try:
            return self._decode(data, max_bytes)
        except imagelib.ImageRejected as exc:
            code = {"ErrorImageSize": "BadRequestImageSizeBytes",
                    "ErrorImageDimensions": "BadRequestImageDimensions"}.get(exc.status, "BadRequestImageFormat")
            raise BadRequest(str(exc), code=code) from exc

    def classify(self, project_id: str, publish_name: str, data: bytes, *, store: bool = True,
                 application: str | None = None, base_url: str = "") -> dict[str, Any]:
        project = self._project_row(project_id)
        row = self.db.one("SELECT * FROM iterations WHERE project_id = ? AND publish_name = ?",
                          (project["id"], publish_name))
        if row is None:
            raise NotFound(
                f"No iteration of project {project['id']} is published as {publish_name!r}. Check the publish name, "
                "or publish an iteration with PublishIteration.", code="NotFoundIteration")
        if application is not None and (len(application) > 64 or not re.fullmatch(r"[\w.\-]*", application)):
            raise BadRequest("application must be at most 64 letters, digits, '.', '_' or '-'.",
                             code="BadRequestPredictionInvalidApplicationName")
        image = self._check_prediction_image(data, imagelib.MAX_PREDICTION_IMAGE_BYTES)
        return self._predict(project["id"], row, image, store=store, application=application, base_url=base_url)

    def query_predictions(self, project_id: str, token: dict[str, Any], *, base_url: str = "") -> dict[str, Any]:
        """Stored predictions (quick tests, and classify calls that store), filtered as PredictionQueryToken says.

        `tags` keeps predictions whose probability for each listed tag lies within [minThreshold, maxThreshold]
        (at most 2 tags, as the spec says). `continuation` in the answer's token is the offset of the next page,
        empty when there is none; send the token back unchanged to get that page.
        """
        project = self._project_row(project_id)
        query = parse_prediction_query(token)
        where, params = ["project_id = ?"], [project["id"]]
        for column, value, compare in (("iteration_id", query["iterationId"], "="),
                                       ("application", query["application"], "="),
                                       ("created", query["startTime"], ">="), ("created", query["endTime"], "<=")):
            if value:
                where.append(f"{column} {compare} ?")
                params.append(value)
        direction = "ASC" if query["orderBy"] == "Oldest" else "DESC"  # Suggested: no ranking here, newest first
        rows = self.db.query(f"SELECT * FROM predictions WHERE {' AND '.join(where)} "
                             f"ORDER BY created {direction}, rowid {direction}", params)
        if query["tags"]:
            rows = [r for r in rows if within_thresholds(json.loads(r["predictions"]), query["tags"])]
        skip, max_count = query["skip"], query["maxCount"]
        page = rows[skip:skip + max_count]
        results = []
        for r in page:
            uri = f"{base_url}/customvision/local/images/{project['id']}/{r['id']}"
            results.append({
                "resizedImageUri": f"{uri}/resized", "thumbnailUri": f"{uri}/thumbnail",
                "originalImageUri": f"{uri}/original", "domain": r["domain_id"], "id": r["id"],
                "project": r["project_id"], "iteration": r["iteration_id"], "created": r["created"],
                "predictions": json.loads(r["predictions"]),
            })
        more = skip + max_count < len(rows)
        next_token = answer_token(token, query, str(skip + max_count) if more else "")
        return {"token": next_token, "results": results}

    def delete_predictions(self, project_id: str, ids: Sequence[str]) -> None:
        project = self._project_row(project_id)
        if not ids:
            raise BadRequest("Give the prediction ids to delete.", code="BadRequestPredictionIdsMissing")
        if len(ids) > 64:
            raise BadRequest("At most 64 prediction ids per call.", code="BadRequestPredictionIdsExceededCount")
        for pid in ids:
            self.db.execute("DELETE FROM predictions WHERE id = ? AND project_id = ?", (pid.lower(), project["id"]))
            self.blobs.delete(f"predictions/{pid.lower()}")

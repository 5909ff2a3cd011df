"""Publishing: an iteration made available to the prediction API under a name (one iteration per name). Export is
`exports`.
"""

from __future__ import annotations

from ..exceptions import BadRequest
from .base import BackendBase, now
from .limits import PREDICTION_RESOURCE_ID, PUBLISH_NAME


class PublishingModels(BackendBase):
    """Publishing an iteration under a name for the prediction API."""

    def publish_iteration(self, project_id: str, iteration_id: str, publish_name: str, prediction_id: str,
                          overwrite: bool = False) -> bool:
        project = self._project_row(project_id)
        row = self._completed_iteration(project["id"], iteration_id)
        if not publish_name or not PUBLISH_NAME.match(publish_name):
            raise BadRequest(f"publishName {publish_name!r} is not valid: use 1 to 256 letters, digits, '.', '_' or "
                             "'-', starting with a letter or digit.", code="BadRequestInvalidPublishName")
        if not prediction_id or not PREDICTION_RESOURCE_ID.match(prediction_id):
            raise BadRequest(
                "predictionId must be the resource id of a prediction resource, like /subscriptions/<id>/resourceGroups/"
                "<group>/providers/Microsoft.CognitiveServices/accounts/<name>.", code="BadRequestInvalidPublishTarget")
        with self.db.transaction() as c:
            if row["publish_name"] == publish_name:
                c.execute("UPDATE iterations SET publish_resource_id = ?, last_modified = ? WHERE id = ?",
                          (prediction_id, now(), row["id"]))
                return True
            if row["publish_name"]:
                raise BadRequest(f"Iteration {row['name']!r} is already published as {row['publish_name']!r}; "
                                 "unpublish it first.", code="BadRequestIterationIsPublished")
            other = c.execute("SELECT id, name FROM iterations WHERE project_id = ? AND publish_name = ?",
                              (project["id"], publish_name)).fetchone()
            if other is not None:
                if not overwrite:
                    raise BadRequest(
                        f"The publish name {publish_name!r} is already used by {other['name']!r}. Unpublish it, "
                        "choose another name, or pass overwrite=true.", code="BadRequestInvalidPublishName")
                c.execute("UPDATE iterations SET publish_name = '', publish_resource_id = '', last_modified = ? "
                          "WHERE id = ?", (now(), other["id"]))
            c.execute("UPDATE iterations SET publish_name = ?, publish_resource_id = ?, last_modified = ? WHERE id = ?",
                      (publish_name, prediction_id, now(), row["id"]))
        return True

    def unpublish_iteration(self, project_id: str, iteration_id: str) -> None:
        project = self._project_row(project_id)
        row = self._iteration_row(project["id"], iteration_id)
        if not row["publish_name"]:
            raise BadRequest(f"Iteration {row['name']!r} is not published.", code="BadRequestIterationNotPublished")
        self.db.execute("UPDATE iterations SET publish_name = '', last_modified = ? WHERE id = ?", (now(), row["id"]))

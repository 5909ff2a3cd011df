"""A project's training images: batch uploads with a status per image (duplicates by SHA-256), tags and metadata,
queries (tags, tagging status, metadata `$filter`, iteration), and deletion that keeps the bytes a training job still
needs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import images as imagelib
from ..exceptions import BadRequest, NotFound
from .base import new_id, now
from .features_cache import FeatureCacheModels
from .limits import MAX_IMAGES_PER_BATCH, MAX_IMAGES_PER_PROJECT, MAX_TAGS_PER_BATCH, MAX_TAGS_PER_IMAGE, MAX_TAKE
from .metadata_filter import metadata_filter_sql


@dataclass
class ImageSource:
    """One image of an upload batch: its bytes (or why there are none) and its own tags."""

    label: str  # what the answer's sourceUrl shows: the URL, or the quoted file name
    data: bytes | None
    tag_ids: list[str] = field(default_factory=list)
    error_status: str | None = None  # e.g. "ErrorSource" when a URL could not be fetched
    error_message: str = ""


class TrainingImageModels(FeatureCacheModels):
    """Training images, their tags and their metadata."""

    relative_image_uris = False  # a resource behind a VNET: URIs are paths for GetArtifact (the spec's Image fields)

    def _image_json(self, row, base_url: str, tags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if tags is None:
            tags = self._tags_of_images([row["id"]]).get(row["id"], [])
        uri = (f"images/{row['id']}" if self.relative_image_uris
               else f"{base_url}/customvision/local/images/{row['project_id']}/{row['id']}")
        out = {
            "id": row["id"],
            "created": row["created"],
            "width": row["width"],
            "height": row["height"],
            "resizedImageUri": f"{uri}/resized",
            "thumbnailUri": f"{uri}/thumbnail",
            "originalImageUri": f"{uri}/original",
            "tags": tags or None,
            "regions": None,
            "metadata": json.loads(row["metadata"]) if row["metadata"] else None,
        }
        return out

    def _tags_of_images(self, image_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for chunk_start in range(0, len(image_ids), 500):
            chunk = list(image_ids[chunk_start:chunk_start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.db.query(
                f"SELECT it.image_id, it.tag_id, it.created, t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id "
                f"WHERE it.image_id IN ({marks}) ORDER BY it.created, t.name", chunk)
            for r in rows:
                out.setdefault(r["image_id"], []).append(
                    {"tagId": r["tag_id"], "tagName": r["name"], "created": r["created"]})
        return out

    def _images_json(self, rows, base_url: str) -> list[dict[str, Any]]:
        tags = self._tags_of_images([r["id"] for r in rows])
        return [self._image_json(r, base_url, tags.get(r["id"], [])) for r in rows]

    def _check_batch_tags(self, project_id: str, tag_ids: Iterable[str]) -> dict[str, str]:
        """Tag id -> tag type for every tag named in a batch; refuses unknown ones (naming them)."""
        wanted = {t.lower() for t in tag_ids}
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self.db.query(f"SELECT id, type FROM tags WHERE project_id = ? AND id IN ({marks})",
                             [project_id, *wanted])
        known = {r["id"]: r["type"] for r in rows}
        missing = sorted(wanted - set(known))
        if missing:
            raise BadRequest(f"Tag id(s) {', '.join(missing)} do not exist in this project. Create the tags first.",
                             code="BadRequestImageTags")
        return known

    def create_images(self, project_id: str, sources: Sequence[ImageSource], batch_tag_ids: Sequence[str] = (),
                      metadata: dict[str, str] | None = None, *, base_url: str = "") -> tuple[dict[str, Any], bool]:
        """Add a batch of images; returns (ImageCreateSummary, every image OK)."""
        project = self._project_row(project_id)
        pid = project["id"]
        if not sources:
            raise BadRequest("The batch has no images.", code="BadRequestImageBatch")
        if len(sources) > MAX_IMAGES_PER_BATCH:
            raise BadRequest(f"The batch has {len(sources)} images; at most {MAX_IMAGES_PER_BATCH} are allowed in one "
                             "batch. Split it.", code="BadRequestImageBatch")
        all_tags = {t.lower() for t in batch_tag_ids} | {t.lower() for s in sources for t in s.tag_ids}
        if len(all_tags) > MAX_TAGS_PER_BATCH:
            raise BadRequest(f"The batch uses {len(all_tags)} tags; at most {MAX_TAGS_PER_BATCH} are allowed in one "
                             "batch. Split it by tag.", code="BadRequestExceedTagPerImageLimit")
        tag_types = self._check_batch_tags(pid, all_tags)
        self._check_metadata(metadata)
        results: list[dict[str, Any]] = []
        for source in sources:
            results.append(self._create_one_image(pid, source, [t.lower() for t in batch_tag_ids], tag_types,
                                                  metadata, base_url))
        all_ok = all(r["status"] == "OK" for r in results)
        return {"isBatchSuccessful": all_ok, "images": results}, all_ok

    @staticmethod
    def _check_metadata(metadata: dict[str, str] | None) -> None:
        if metadata is None:
            return
        if not isinstance(metadata, dict) or len(metadata) > 10:
            raise BadRequest("metadata must be an object of at most 10 string entries.",
                             code="BadRequestImageMetadataKey")
        for k, v in metadata.items():
            if not isinstance(k, str) or not k or len(k) > 128:
                raise BadRequest(f"metadata key {k!r} must be 1 to 128 characters.", code="BadRequestImageMetadataKey")
            if not isinstance(v, str) or len(v) > 256:
                raise BadRequest(f"metadata value of {k!r} must be a string of at most 256 characters.",
                                 code="BadRequestImageMetadataValue")

    def _create_one_image(self, pid: str, source: ImageSource, batch_tags: list[str], tag_types: dict[str, str],
                          metadata: dict[str, str] | None, base_url: str) -> dict[str, Any]:
        def result(status: str, row=None) -> dict[str, Any]:
            out: dict[str, Any] = {"sourceUrl": source.label, "status": status}
            if row is not None:
                out["image"] = self._image_json(row, base_url)
            return out

        if source.error_status:
            return result(source.error_status)
        try:
            decoded = self._decode(source.data or b"", imagelib.MAX_TRAINING_IMAGE_BYTES)
        except imagelib.ImageRejected as exc:
            return result(exc.status)
        sha256 = decoded.sha256()
        tag_ids = list(dict.fromkeys(batch_tags + [t.lower() for t in source.tag_ids]))
        types = {tag_types[t] for t in tag_ids}
        if "Negative" in types and len(tag_ids) > 1:
            return result("ErrorNegativeAndRegularTagOnSameImage")
        t = now()
        with self.db.transaction() as c:
            existing = c.execute("SELECT * FROM images WHERE project_id = ? AND sha256 = ?",
                                 (pid, sha256)).fetchone()
            if existing is not None:
                self._add_tags(c, existing["id"], tag_ids, t)
                status, image_id = "OKDuplicate", existing["id"]
            else:
                (count,) = c.execute("SELECT COUNT(*) FROM images WHERE project_id = ?", (pid,)).fetchone()
                if count >= MAX_IMAGES_PER_PROJECT:
                    return result("ErrorLimitExceed")
                image_id = new_id()
                c.execute("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (image_id, pid, t, decoded.width, decoded.height, decoded.format, sha256,
                           json.dumps(metadata) if metadata else None))
                self._add_tags(c, image_id, tag_ids, t)
                self._touch(c, pid)
                status = "OK"
                # Written inside the transaction: a reader that sees the row always finds the bytes.
                self.blobs.put(f"images/{image_id}", source.data or b"")
        if status == "OK":
            self._cache_features(image_id, decoded)
        row = self.db.one("SELECT * FROM images WHERE id = ?", (image_id,))
        return result(status, row)

    @staticmethod
    def _add_tags(c, image_id: str, tag_ids: Sequence[str], t: str) -> None:
        for tag_id in tag_ids:
            c.execute("INSERT OR IGNORE INTO image_tags VALUES (?, ?, ?)", (image_id, tag_id, t))

    def get_artifact(self, project_id: str, path: str) -> bytes:
        """GetArtifact: an image's bytes by the relative path a VNET resource answers (``images/<id>/original``,
        ``resized`` or ``thumbnail``); NotFound for anything else."""
        self._project_row(project_id)
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "images" or parts[2] not in ("original", "resized", "thumbnail"):
            raise NotFound(f"No artifact has the path {path!r}.", code="NotFound")
        try:
            data = self.get_image_bytes(project_id, str(uuid.UUID(parts[1])))
        except ValueError:
            raise NotFound(f"No artifact has the path {path!r}.", code="NotFound") from None
        return data if parts[2] == "original" else imagelib.rendition(data, parts[2])[0]

    def get_image_bytes(self, project_id: str, image_id: str) -> bytes:
        row = self.db.one("SELECT id FROM images WHERE id = ?1 AND project_id = ?2 UNION "
                          "SELECT id FROM retired_images WHERE id = ?1 AND project_id = ?2", (image_id.lower(), project_id))
        data = self.blobs.get(f"images/{image_id.lower()}") if row is not None else None
        if data is None:
            data = self.blobs.get(f"predictions/{image_id.lower()}")
        if data is None:
            raise NotFound(f"Image {image_id} not found.", code="NotFoundImage")
        return data

    def _image_filter(self, project_id: str, iteration_id: str | None, tag_ids: Sequence[str],
                      tagging: str, metadata_filter: str | None = None) -> tuple[str, list[Any]]:
        where, params = ["i.project_id = ?"], [project_id]
        if metadata_filter:
            try:
                sql, values = metadata_filter_sql(metadata_filter)
            except ValueError as exc:
                shown = metadata_filter if len(metadata_filter) <= 120 else metadata_filter[:120] + "..."
                raise BadRequest(f"$filter {shown!r} is not valid: {exc}. Write conditions like "
                                 "key eq 'value' or key ne 'value', joined by and / or.",
                                 code="BadRequestInvalid") from None
            where.append(sql)
            params.extend(values)
        if iteration_id:
            snapshot = self._iteration_snapshot(project_id, iteration_id)
            ids = snapshot["imageIds"]
            where.append("i.id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(ids))
        if tag_ids:
            marks = ",".join("?" * len(tag_ids))
            where.append(f"EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id AND x.tag_id IN ({marks}))")
            params.extend(t.lower() for t in tag_ids)
        if tagging == "Tagged":
            where.append("EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id)")
        elif tagging == "Untagged":
            where.append("NOT EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id)")
        return " AND ".join(where), params

    def get_images(self, project_id: str, *, iteration_id: str | None = None, tag_ids: Sequence[str] = (),
                   tagging: str = "All", order_by: str | None = None, take: int = 50, skip: int = 0,
                   metadata_filter: str | None = None, base_url: str = "") -> list[dict[str, Any]]:
        project = self._project_row(project_id)
        self._check_page(take, skip)
        if len(tag_ids) > MAX_TAGS_PER_BATCH:
            raise BadRequest(f"At most {MAX_TAGS_PER_BATCH} tagIds may be given.", code="BadRequestExceededBatchSize")
        where, params = self._image_filter(project["id"], iteration_id, tag_ids, tagging, metadata_filter)
        direction = "ASC" if order_by == "Oldest" else "DESC"
        rows = self.db.query(
            f"SELECT i.* FROM images i WHERE {where} ORDER BY i.created {direction}, i.rowid {direction} "
            "LIMIT ? OFFSET ?", [*params, take, skip])
        return self._images_json(rows, base_url)

    def count_images(self, project_id: str, *, iteration_id: str | None = None, tag_ids: Sequence[str] = (),
                     tagging: str = "All", metadata_filter: str | None = None) -> int:
        project = self._project_row(project_id)
        where, params = self._image_filter(project["id"], iteration_id, tag_ids, tagging, metadata_filter)
        (count,) = self.db.one(f"SELECT COUNT(*) FROM images i WHERE {where}", params)
        return count

    def get_images_by_ids(self, project_id: str, image_ids: Sequence[str], *, iteration_id: str | None = None,
                          base_url: str = "") -> list[dict[str, Any]]:
        project = self._project_row(project_id)
        if len(image_ids) > MAX_TAKE:
            raise BadRequest(f"At most {MAX_TAKE} imageIds may be given.", code="BadRequestExceededBatchSize")
        where, params = self._image_filter(project["id"], iteration_id, (), "All")
        rows = self.db.query(f"SELECT i.* FROM images i WHERE {where} AND i.id IN (SELECT value FROM json_each(?))",
                             [*params, json.dumps([i.lower() for i in image_ids])])
        order = {i.lower(): n for n, i in enumerate(image_ids)}
        rows = sorted(rows, key=lambda r: order[r["id"]])
        return self._images_json(rows, base_url)

    def delete_images(self, project_id: str, image_ids: Sequence[str] = (), *, all_images: bool = False,
                      all_iterations: bool = False) -> None:
        """Delete images from the workspace; with `all_iterations` from every iteration too.

        Without it (the spec: allIterations "removes these images from all iterations, not just the current
        workspace"), an iteration that trained on an image keeps it: its image performances still list it, and its
        bytes stay until no iteration has it (`_drop_unused_retired_images`).
        """
        project = self._project_row(project_id)
        if not all_images:
            if not image_ids:
                raise BadRequest("Give imageIds, or allImages=true.", code="BadRequestRequiredParamIsNull")
            if len(image_ids) > MAX_TAKE:
                raise BadRequest(f"At most {MAX_TAKE} imageIds may be deleted per call.",
                                 code="BadRequestExceededBatchSize")
        with self.db.transaction() as c:
            if all_images:
                ids = [r["id"] for r in c.execute("SELECT id FROM images WHERE project_id = ?", (project["id"],))]
            else:  # only this project's images: an id from another project must not lose that project its bytes
                ids = [r["id"] for r in c.execute(
                    "SELECT id FROM images WHERE project_id = ? AND id IN (SELECT value FROM json_each(?))",
                    (project["id"], json.dumps([i.lower() for i in image_ids])))]
            if all_iterations:
                retired = [r["id"] for r in c.execute(
                    "SELECT id FROM retired_images WHERE project_id = ? AND (? OR id IN (SELECT value FROM json_each(?)))",
                    (project["id"], all_images, json.dumps([i.lower() for i in image_ids])))]
                c.execute("DELETE FROM retired_images WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(retired),))
                kept: set[str] = set()
            else:
                retired = []
                kept = set(ids) & self._iteration_image_ids(c, project["id"])
                c.execute("INSERT OR REPLACE INTO retired_images SELECT * FROM images WHERE id IN "
                          "(SELECT value FROM json_each(?))", (json.dumps(sorted(kept)),))
            c.execute("DELETE FROM images WHERE project_id = ? AND id IN (SELECT value FROM json_each(?))",
                      (project["id"], json.dumps(ids)))
            self._touch(c, project["id"])
            in_training = self._images_in_training(c, project["id"])
        for image_id in [*ids, *retired]:
            if image_id not in in_training and image_id not in kept:  # a running job removes its own when done
                self._delete_image_blobs(image_id)

    def _images_in_training(self, c, project_id: str) -> set[str]:
        """Images a queued or running training job of the project still has to read.

        Azure trains on a snapshot of the images taken when TrainProject is called; deleting an image afterwards
        does not change that iteration. Here the job reads features when it runs, so their bytes must outlive it.
        """
        out: set[str] = set()
        for (iteration_id,) in c.execute("SELECT id FROM iterations WHERE project_id = ? AND status = 'Training'",
                                         (project_id,)).fetchall():
            snapshot = self.blobs.get_json(f"iterations/{iteration_id}/snapshot.json") or {}
            out.update(snapshot.get("imageIds", []))
        return out

    def create_image_tags(self, project_id: str, entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        project = self._project_row(project_id)
        pid = project["id"]
        if not isinstance(entries, list) or not entries:
            raise BadRequest("The batch must list at least one {imageId, tagId} pair.", code="BadRequestImageTags")
        pairs = []
        for e in entries:
            if not isinstance(e, dict) or not e.get("imageId") or not e.get("tagId"):
                raise BadRequest("Every entry needs imageId and tagId.", code="BadRequestImageTags")
            pairs.append((str(e["imageId"]).lower(), str(e["tagId"]).lower()))
        tag_types = self._check_batch_tags(pid, {t for _, t in pairs})
        images = {r["id"] for r in self.db.query(
            "SELECT id FROM images WHERE project_id = ? AND id IN (SELECT value FROM json_each(?))",
            (pid, json.dumps([i for i, _ in pairs])))}
        missing = sorted({i for i, _ in pairs} - images)
        if missing:
            raise NotFound(f"Image id(s) {', '.join(missing)} not found in this project.", code="NotFoundImage")
        created, duplicated, exceeded = [], [], []
        t = now()
        with self.db.transaction() as c:
            for image_id, tag_id in pairs:
                current = {r["tag_id"]: r["type"] for r in c.execute(
                    "SELECT it.tag_id, t.type FROM image_tags it JOIN tags t ON t.id = it.tag_id WHERE image_id = ?",
                    (image_id,)).fetchall()}
                entry = {"imageId": image_id, "tagId": tag_id}
                if tag_id in current:
                    duplicated.append(entry)
                    continue
                if current and ("Negative" in current.values() or tag_types[tag_id] == "Negative"):
                    raise BadRequest(f"Image {image_id} cannot carry a Negative tag together with other tags.",
                                     code="BadRequestNegativeAndRegularTagOnSameImage")
                if len(current) >= MAX_TAGS_PER_IMAGE:
                    exceeded.append(entry)
                    continue
                c.execute("INSERT INTO image_tags VALUES (?, ?, ?)", (image_id, tag_id, t))
                created.append(entry)
            self._touch(c, pid)
        return {"created": created, "duplicated": duplicated, "exceeded": exceeded}

    def delete_image_tags(self, project_id: str, image_ids: Sequence[str], tag_ids: Sequence[str]) -> None:
        project = self._project_row(project_id)
        if not image_ids or not tag_ids:
            raise BadRequest("Give both imageIds and tagIds.", code="BadRequestRequiredParamIsNull")
        if len(image_ids) > 64 or len(tag_ids) > MAX_TAGS_PER_BATCH:
            raise BadRequest("At most 64 imageIds and 20 tagIds per call.", code="BadRequestExceededBatchSize")
        with self.db.transaction() as c:
            c.execute(
                "DELETE FROM image_tags WHERE image_id IN (SELECT value FROM json_each(?)) "
                "AND tag_id IN (SELECT value FROM json_each(?)) "
                "AND image_id IN (SELECT id FROM images WHERE project_id = ?)",
                (json.dumps([i.lower() for i in image_ids]), json.dumps([t.lower() for t in tag_ids]), project["id"]))
            self._touch(c, project["id"])

    def update_image_metadata(self, project_id: str, image_ids: Sequence[str],
                              metadata: dict[str, str]) -> tuple[dict[str, Any], bool]:
        project = self._project_row(project_id)
        self._check_metadata(metadata)
        results, ok = [], True
        with self.db.transaction() as c:
            for image_id in image_ids:
                row = c.execute("SELECT metadata FROM images WHERE id = ? AND project_id = ?",
                                (image_id.lower(), project["id"])).fetchone()
                if row is None:
                    results.append({"imageId": image_id, "status": "ErrorImageNotFound", "metadata": None})
                    ok = False
                    continue
                merged = {**(json.loads(row["metadata"]) if row["metadata"] else {}), **metadata}
                if len(merged) > 10:
                    results.append({"imageId": image_id, "status": "ErrorLimitExceed", "metadata": None})
                    ok = False
                    continue
                c.execute("UPDATE images SET metadata = ? WHERE id = ?", (json.dumps(merged), image_id.lower()))
                results.append({"imageId": image_id.lower(), "status": "OK", "metadata": merged})
        return {"isBatchSuccessful": ok, "images": results}, ok

"""The service's state and behaviour: projects, tags, images, iterations, predictions, and the rules the real service
enforces on them (limits, statuses, error codes). No HTTP here: `responses.py` translates requests into these calls.

Answers are plain dicts shaped and named exactly as the spec's JSON (camelCase), so the HTTP layer only serialises.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import numpy as np

from . import images as imagelib
from .exceptions import BadRequest, NotFound, not_found_iteration, not_found_project, not_found_tag
from .learning import Learning
from .store import Storage

# Limits of the S0 tier (Microsoft Learn, "Limits and quotas"), and of one upload batch.
MAX_PROJECTS = 100
MAX_IMAGES_PER_PROJECT = 100_000
MAX_TAGS_PER_PROJECT = 500
MAX_ITERATIONS_PER_PROJECT = 20
MAX_TAGS_PER_IMAGE = 100
MAX_IMAGES_PER_BATCH = 64
MAX_TAGS_PER_BATCH = 20
MIN_IMAGES_PER_TAG = 5
MAX_TAKE = 256

CLASSIFICATION_TYPES = ("Multiclass", "Multilabel")
TAG_TYPES = ("Regular", "Negative", "GeneralProduct")
EXPORT_PLATFORMS = ("CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK", "OpenVino")
DEFAULT_DOMAIN_ID = "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31"  # "General", what the service picks when none is given

# An ARM resource id of a Cognitive Services account: what PublishIteration's predictionId must be.
PREDICTION_RESOURCE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.CognitiveServices/accounts/[^/]+$",
    re.IGNORECASE,
)
PUBLISH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

RESTART_REASON = "The local service stopped while this iteration was training. Train the project again."


def now() -> str:
    """UTC time as the service writes it: ISO 8601 with milliseconds and a Z."""
    t = datetime.now(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def new_id() -> str:
    return str(uuid.uuid4())


def load_domains() -> list[dict[str, Any]]:
    """The real domains (ids and names as the Azure service lists them), from emulator/data/domains.json."""
    return json.loads(resources.files("emulator").joinpath("data/domains.json").read_text(encoding="utf-8"))


def training_fingerprint(classification_type: str, tag_ids: Sequence[str], pairs: Iterable[tuple[str, str]]) -> str:
    """What a training run would learn from; equal fingerprints mean "nothing new since the last iteration"."""
    h = hashlib.sha256(classification_type.encode())
    for t in sorted(tag_ids):
        h.update(b"t" + t.encode())
    for image_id, tag_id in sorted(pairs):
        h.update(b"p" + image_id.encode() + tag_id.encode())
    return h.hexdigest()


_FILTER_TOKEN = re.compile(r"\s*(?:(?P<open>\()|(?P<close>\))|'(?P<value>(?:[^']|'')*)'|(?P<word>[^\s'()]+))")


def metadata_filter_sql(expression: str, column: str = "i.metadata") -> tuple[str, list[str]]:
    """SQL (with parameters) for a GetImages / GetImageCount `$filter` over image metadata.

    The grammar the spec describes: `key eq 'value'`, `key ne 'value'`, joined by `and` / `or` (`and` binds tighter),
    with parentheses; a value's quote is doubled (`'it''s'`), as in OData. The spec's example writes a leading
    `metadata=`, which is accepted. An image without the key is not `eq` any value and is `ne` every value.
    ValueError naming what is wrong otherwise.
    """
    text = expression.strip()
    if text.lower().startswith("metadata="):
        text = text[len("metadata="):]
    tokens, pos = [], 0
    while pos < len(text):
        m = _FILTER_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if not text[pos:].strip():
                break
            raise ValueError(f"cannot read {text[pos:]!r} (an unclosed quote?)")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind).replace("''", "'") if kind == "value" else m.group(kind)))
        pos = m.end()
    params: list[str] = []

    def take(n: int) -> tuple[str, str] | None:
        return tokens[n] if n < len(tokens) else None

    def parse_or(n: int) -> tuple[str, int]:
        sql, n = parse_and(n)
        while (t := take(n)) and t[0] == "word" and t[1].lower() == "or":
            right, n = parse_and(n + 1)
            sql = f"({sql} OR {right})"
        return sql, n

    def parse_and(n: int) -> tuple[str, int]:
        sql, n = parse_term(n)
        while (t := take(n)) and t[0] == "word" and t[1].lower() == "and":
            right, n = parse_term(n + 1)
            sql = f"({sql} AND {right})"
        return sql, n

    def parse_term(n: int) -> tuple[str, int]:
        t = take(n)
        if t is not None and t[0] == "open":
            sql, n = parse_or(n + 1)
            if take(n) != ("close", ")"):
                raise ValueError("a '(' is not closed")
            return sql, n + 1
        key, op, value = t, take(n + 1), take(n + 2)
        if key is None or key[0] != "word" or '"' in key[1]:
            raise ValueError(f"expected a metadata key at {key[1] if key else 'the end'!r}")
        if op is None or op[0] != "word" or op[1].lower() not in ("eq", "ne"):
            raise ValueError(f"expected eq or ne after {key[1]!r}")
        if value is None or value[0] != "value":
            raise ValueError(f"expected a quoted value after {key[1]} {op[1]}")
        params.extend([f'$."{key[1]}"', value[1]])
        compare = "=" if op[1].lower() == "eq" else "IS NOT"
        return f"(json_extract({column}, ?) {compare} ?)", n + 3

    if not tokens:
        raise ValueError("it is empty")
    sql, end = parse_or(0)
    if end != len(tokens):
        raise ValueError(f"unexpected {tokens[end][1]!r}; join conditions with and / or")
    return sql, params


@dataclass
class ImageSource:
    """One image of an upload batch: its bytes (or why there are none) and its own tags."""

    label: str  # what the answer's sourceUrl shows: the URL, or the quoted file name
    data: bytes | None
    tag_ids: list[str] = field(default_factory=list)
    error_status: str | None = None  # e.g. "ErrorSource" when a URL could not be fetched
    error_message: str = ""


class UnreadableTrainingImages(ValueError):
    """Training images whose features cannot be computed; the message names them and says what to do."""

    def __init__(self, problems: Sequence[tuple[str, str]], total: int) -> None:
        shown = "; ".join(f"image {image_id}: {reason}" for image_id, reason in problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        super().__init__(
            f"{len(problems)} of {total} training images could not be read, so nothing was trained ({shown}{more}). "
            "Delete these images (DeleteImages), upload them again, and train the project again.")
        self.image_ids = [image_id for image_id, _ in problems]


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


class CustomVisionBackend:
    """All projects of one service instance."""

    def __init__(self, storage: Storage, learning: Learning, *, base_url_hint: str = "") -> None:
        self.storage = storage
        self.db = storage.db
        self.blobs = storage.blobs
        self.learning = learning
        self.domains = {d["id"]: d for d in load_domains()}
        self._model_cache: dict[str, tuple[Any, dict[str, list[str]]]] = {}  # iteration id -> (model, its tags)
        self._model_lock = threading.Lock()
        self._submit_training = None  # set by the training worker
        self._fail_interrupted_training()

    # ------------------------------------------------------------------ domains
    def get_domains(self) -> list[dict[str, Any]]:
        return [dict(d) for d in self.domains.values()]

    def get_domain(self, domain_id: str) -> dict[str, Any]:
        domain = self.domains.get(domain_id.lower())
        if domain is None:
            raise NotFound(f"Domain {domain_id} not found. GetDomains lists the valid ids.", code="NotFoundDomain")
        return dict(domain)

    # ------------------------------------------------------------------ projects
    def _project_row(self, project_id: str):
        row = self.db.one("SELECT * FROM projects WHERE id = ?", (project_id.lower(),))
        if row is None:
            raise not_found_project(project_id)
        return row

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
            "status": "Succeeded",
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
        image_ids = [r["id"] for r in self.db.query("SELECT id FROM images WHERE project_id = ?", (row["id"],))]
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

    # ------------------------------------------------------------------ tags
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

    @staticmethod
    def _touch(c, project_id: str) -> None:
        c.execute("UPDATE projects SET last_modified = ? WHERE id = ?", (now(), project_id))

    # ------------------------------------------------------------------ images
    def _image_json(self, row, base_url: str, tags: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if tags is None:
            tags = self._tags_of_images([row["id"]]).get(row["id"], [])
        uri = f"{base_url}/customvision/local/images/{row['project_id']}/{row['id']}"
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

    def _feature_key(self, image_id: str, *, mirrored: bool = False) -> str:
        version = re.sub(r"[^A-Za-z0-9_.\-]", "_", self.learning.feature_version)
        return f"features/{version}/{'mirrored/' if mirrored else ''}{image_id}.npy"

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

    def _cache_features(self, image_id: str, decoded: imagelib.DecodedImage) -> np.ndarray | None:
        """Compute features once, when the image arrives (from the pixels its checks decoded), so training only
        reads them.

        Failure here does not fail the upload (the image already passed the format checks); training retries and
        reports a clear reason if the image still cannot be featurised. Mirrored features are not computed here:
        only Advanced training uses them, so they are made (and cached) the first time it does.
        """
        try:
            features = np.asarray(self.learning.features_of_image(decoded.pixels), dtype=np.float32)
            self.blobs.put_array(self._feature_key(image_id), features)
            return features
        except (ImportError, ValueError, AttributeError):
            return None

    def features_of(self, image_id: str, *, mirrored: bool = False) -> np.ndarray:
        """Cached features of a stored image, or of its mirror image (computed now if missing or made by an older
        feature version). ValueError saying why when the image's bytes are gone or cannot be decoded."""
        key = self._feature_key(image_id, mirrored=mirrored)
        cached = self.blobs.get_array(key)
        if cached is not None:
            return cached
        data = self.blobs.get(f"images/{image_id}")
        if data is None:
            raise ValueError("its stored bytes are missing from the service's data directory")
        features = np.asarray(self.learning.extract_features(data, mirror=mirrored), dtype=np.float32)
        self.blobs.put_array(key, features)
        return features

    def training_features(self, image_ids: Sequence[str], *, mirrored: bool = False) -> np.ndarray:
        """(n_images, n_features) for a training job; UnreadableTrainingImages naming every image that failed.

        All images are tried before failing, so one Failed iteration lists every image to fix, not just the first.
        """
        rows, bad = [], []
        for image_id in image_ids:
            try:
                rows.append(self.features_of(image_id, mirrored=mirrored))
            except ValueError as exc:
                bad.append((image_id, str(exc)))
        if bad:
            raise UnreadableTrainingImages(bad, len(image_ids))
        return np.stack(rows)

    def get_image_bytes(self, project_id: str, image_id: str) -> bytes:
        row = self.db.one("SELECT id FROM images WHERE id = ? AND project_id = ?", (image_id.lower(), project_id))
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
                raise BadRequest(f"$filter {metadata_filter!r} is not valid: {exc}. Write conditions like "
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

    @staticmethod
    def _check_page(take: int, skip: int) -> None:
        if take < 0 or take > MAX_TAKE or skip < 0:
            raise BadRequest(f"take must be 0 to {MAX_TAKE} and skip at least 0.", code="BadRequest")

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

    def delete_images(self, project_id: str, image_ids: Sequence[str] = (), *, all_images: bool = False) -> None:
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
            c.execute("DELETE FROM images WHERE project_id = ? AND id IN (SELECT value FROM json_each(?))",
                      (project["id"], json.dumps(ids)))
            self._touch(c, project["id"])
            in_training = self._images_in_training(c, project["id"])
        for image_id in ids:
            if image_id not in in_training:  # otherwise the training job removes them when it is done
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

    def _delete_image_blobs(self, image_id: str) -> None:
        self.blobs.delete(f"images/{image_id}")
        with contextlib.suppress(ImportError, AttributeError):
            self.blobs.delete(self._feature_key(image_id))
            self.blobs.delete(self._feature_key(image_id, mirrored=True))

    def _delete_orphan_image_blobs(self, image_ids: Sequence[str]) -> None:
        """Remove the bytes of images deleted while a training job needed them (see `_images_in_training`)."""
        kept = {r["id"] for r in self.db.query("SELECT id FROM images WHERE id IN (SELECT value FROM json_each(?))",
                                              (json.dumps(list(image_ids)),))}
        for image_id in image_ids:
            if image_id not in kept:
                self._delete_image_blobs(image_id)

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

    # ------------------------------------------------------------------ iterations
    def _iteration_row(self, project_id: str, iteration_id: str):
        row = self.db.one("SELECT * FROM iterations WHERE id = ? AND project_id = ?",
                          (iteration_id.lower(), project_id))
        if row is None:
            raise not_found_iteration(iteration_id)
        return row

    def _iteration_json(self, row) -> dict[str, Any]:
        domain = self.domains.get(row["domain_id"] or "", {})
        completed = row["status"] == "Completed"
        return {
            "id": row["id"],
            "name": row["name"],
            "status": row["status"],
            "created": row["created"],
            "lastModified": row["last_modified"],
            "trainedAt": row["trained_at"],
            "projectId": row["project_id"],
            "exportable": bool(domain.get("exportable")) and completed,
            "exportableTo": list(domain.get("exportablePlatforms", [])) if completed else [],
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

    def _delete_iteration_blobs(self, iteration_id: str) -> None:
        for name in ("snapshot.json", "model.json", "oof.npy", "folds.npy"):
            self.blobs.delete(f"iterations/{iteration_id}/{name}")
        with self._model_lock:
            self._model_cache.pop(iteration_id, None)

    def _iteration_snapshot(self, project_id: str, iteration_id: str) -> dict[str, Any]:
        row = self._iteration_row(project_id, iteration_id)
        snapshot = self.blobs.get_json(f"iterations/{row['id']}/snapshot.json")
        if snapshot is None:
            raise NotFound(f"Iteration {iteration_id} has no stored training data.", code="NotFoundIteration")
        return snapshot

    def _fail_interrupted_training(self) -> None:
        self.db.execute(
            "UPDATE iterations SET status = 'Failed', training_error_details = ?, last_modified = ? "
            "WHERE status = 'Training'", (RESTART_REASON, now()))

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
                          if training_type == "Advanced" else 0.0)
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

    # ------------------------------------------------------------------ evaluation
    def _completed_iteration(self, project_id: str, iteration_id: str):
        row = self._iteration_row(project_id, iteration_id)
        if row["status"] != "Completed":
            raise BadRequest(f"Iteration {row['name']!r} is {row['status']}, not Completed.",
                             code="BadRequestIterationIsNotTrained")
        return row

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

        Chosen are the iteration's images carrying any of `tag_ids` (all when none), and still in the project: an
        image deleted since has no size or dates left to show, and count and list must agree for paging to work.
        """
        row = self._completed_iteration(project_id, iteration_id)
        snapshot, oof, _ = self._evaluation(row["id"])
        wanted = {snapshot["tagIds"].index(t.lower()) for t in tag_ids if t.lower() in snapshot["tagIds"]}
        if tag_ids and not wanted:
            return snapshot, oof, [], {}
        chosen = [n for n, labels in enumerate(snapshot["labels"]) if not tag_ids or wanted & set(labels)]
        ids = [snapshot["imageIds"][n] for n in chosen]
        rows = {r["id"]: r for r in self.db.query(
            "SELECT * FROM images WHERE project_id = ? AND id IN (SELECT value FROM json_each(?))",
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
                "predictions": self._ranked(snapshot, oof[n]),
                "id": r["id"], "created": r["created"], "width": r["width"], "height": r["height"],
                "imageUri": f"{uri}/original", "thumbnailUri": f"{uri}/thumbnail",
                "tags": [{"tagId": snapshot["tagIds"][k], "tagName": snapshot["tagNames"][k], "created": r["created"]}
                         for k in snapshot["labels"][n]],
                "regions": None,
            })
        return out

    @staticmethod
    def _ranked(snapshot: dict[str, Any], probabilities: np.ndarray) -> list[dict[str, Any]]:
        order = np.argsort(-np.asarray(probabilities, dtype=np.float64), kind="stable")
        return [{"probability": float(probabilities[k]), "tagId": snapshot["tagIds"][k],
                 "tagName": snapshot["tagNames"][k], "tagType": snapshot["tagTypes"][k]} for k in order]

    # ------------------------------------------------------------------ prediction
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
            cached = (self.learning.model_from_json(data), tags)
            with self._model_lock:
                self._model_cache[iteration_id] = cached
        return cached

    def _predict(self, project_id: str, iteration, image: imagelib.DecodedImage, *, store: bool,
                 application: str | None, base_url: str) -> dict[str, Any]:
        model, tags = self._predictor(iteration["id"])
        features = np.asarray(self.learning.features_of_image(image.pixels), dtype=np.float32)
        probabilities = np.asarray(model.predict_proba(features[None, :]))[0]
        prediction = {
            "id": new_id(), "project": project_id, "iteration": iteration["id"], "created": now(),
            "predictions": self._ranked(tags, probabilities),
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
        query = _prediction_query(token)
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
            rows = [r for r in rows if _within_thresholds(json.loads(r["predictions"]), query["tags"])]
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
        next_token = {**token, "continuation": str(skip + max_count) if more else ""}
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

    def get_prediction_image(self, project_id: str, prediction_id: str) -> bytes | None:
        row = self.db.one("SELECT id FROM predictions WHERE id = ? AND project_id = ?",
                          (prediction_id.lower(), project_id))
        return None if row is None else self.blobs.get(f"predictions/{row['id']}")

    # ------------------------------------------------------------------ publishing and export
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

    def get_exports(self, project_id: str, iteration_id: str) -> list[dict[str, Any]]:
        project = self._project_row(project_id)
        self._iteration_row(project["id"], iteration_id)
        return []

    def export_iteration(self, project_id: str, iteration_id: str, platform: str, flavor: str | None = None) -> None:
        project = self._project_row(project_id)
        row = self._completed_iteration(project["id"], iteration_id)
        if platform not in EXPORT_PLATFORMS:
            raise BadRequest(f"platform {platform!r} is unknown; use one of {', '.join(EXPORT_PLATFORMS)}.",
                             code="BadRequestInvalid")
        domain = self.domains.get(row["domain_id"] or "", {})
        if platform not in domain.get("exportablePlatforms", []):
            raise BadRequest(f"Domain {domain.get('name')!r} cannot be exported to {platform}; only compact domains "
                             "export.", code="BadRequestExportValidationFailed")
        raise BadRequest("The local service does not export models (the model is not a neural network that "
                         f"{platform} could run). Export from Azure Custom Vision.", code="BadRequestNotSupported")


MAX_PREDICTION_QUERY_TAGS = 2


def _prediction_query(token: Any) -> dict[str, Any]:
    """A PredictionQueryToken checked and normalised (times in the stored format); BadRequest naming a bad field."""
    def bad(message: str, code: str = "BadRequestPredictionInvalidQueryParameters") -> BadRequest:
        return BadRequest(f"The prediction query is not valid: {message}.", code=code)

    token = token if isinstance(token, dict) else {}
    order_by = token.get("orderBy") or "Newest"
    if order_by not in ("Newest", "Oldest", "Suggested"):
        raise bad(f"orderBy must be Newest, Oldest or Suggested, not {order_by!r}")
    max_count = token.get("maxCount") or 50
    if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 1:
        raise bad(f"maxCount must be a positive integer, not {max_count!r}")
    continuation = str(token.get("continuation") or "0")
    if not continuation.isdigit():
        raise bad("continuation must be the value a previous answer's token gave")
    iteration_id = token.get("iterationId")
    if iteration_id:
        try:
            iteration_id = str(uuid.UUID(str(iteration_id)))
        except ValueError:
            raise bad(f"iterationId {iteration_id!r} is not a uuid") from None
    times = {}
    for name in ("startTime", "endTime"):
        value = token.get(name)
        if value:
            try:
                t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise bad(f"{name} {value!r} is not an ISO 8601 date-time") from None
            t = (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
            times[name] = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    tags = token.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, dict) and t.get("id") for t in tags):
        raise bad("tags must be a list of {id, minThreshold, maxThreshold}")
    if len(tags) > MAX_PREDICTION_QUERY_TAGS:
        raise bad(f"{len(tags)} tags given; at most {MAX_PREDICTION_QUERY_TAGS} can be combined",
                  code="BadRequestPredictionTagsExceededCount")
    thresholds = []
    for t in tags:
        low, high = t.get("minThreshold", 0.0), t.get("maxThreshold", 1.0)
        low, high = 0.0 if low is None else low, 1.0 if high is None else high
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or low > high:
            raise bad(f"tag {t['id']}: minThreshold and maxThreshold must be numbers with min <= max")
        thresholds.append((str(t["id"]).lower(), float(low), float(high)))
    return {"orderBy": order_by, "maxCount": max_count, "skip": int(continuation), "iterationId": iteration_id,
            "application": token.get("application") or None, "startTime": times.get("startTime"),
            "endTime": times.get("endTime"), "tags": thresholds}


def _within_thresholds(predictions: list[dict[str, Any]], thresholds: list[tuple[str, float, float]]) -> bool:
    """Whether a stored prediction's probability for every queried tag lies in its [min, max]."""
    probability = {p["tagId"]: p["probability"] for p in predictions}
    return all(tag in probability and low <= probability[tag] <= high for tag, low, high in thresholds)


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)


# Advanced training's reserved budget, scaled for a local machine: 1 budget hour = 1 minute of wall time at most.
SECONDS_PER_BUDGET_HOUR = 60.0


def advanced_budget_seconds(reserved_budget_in_hours: int) -> float:
    return max(0, reserved_budget_in_hours) * SECONDS_PER_BUDGET_HOUR

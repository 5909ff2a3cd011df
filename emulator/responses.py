"""HTTP translation: read each operation's parameters as the spec names them, call the backend, write its JSON.

One method per operation, named after the spec's operation. Parameter parsing is strict (a malformed uuid, boolean or
number is a 400 naming the parameter), because silently accepting what Azure refuses would hide bugs until production.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request

from . import images as imagelib
from .exceptions import BadRequest, NotFound
from .fetch import FetchError, UrlFetcher
from .models import ImageSource
from .multipart import MultipartError, boundary_of, split_multipart

Json = Any

# Query integers are int32 in the spec (take, skip, reservedBudgetInHours); a larger one is a client mistake, and
# SQLite cannot even hold one past 2**63.
INT32 = (-(2**31), 2**31 - 1)


def json_type(value: Json) -> str:
    """The JSON name of a parsed value's type, for error messages ("a number", "an array", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def require_object(body: Json, what: str, code: str = "BadRequestInvalid") -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying what it should have been (null and arrays are client mistakes)."""
    if not isinstance(body, dict):
        raise BadRequest(f"The body must be a JSON object ({what}), not {json_type(body)}.", code=code)
    return body


def optional_field(body: dict[str, Any], name: str, kind: type, code: str, where: str = "") -> Any:
    """`body[name]` when absent, null or of `kind`; a 400 naming the field and the type it needs otherwise."""
    value = body.get(name)
    if value is None or isinstance(value, kind):
        return value
    wanted = {str: "a string", list: "an array", dict: "an object", bool: "a boolean"}.get(kind, "another type")
    raise BadRequest(f"{where}{name} must be {wanted}, not {json_type(value)}.", code=code)


class Reply:
    """What a handler answers: a status and a JSON-able body (None for 204)."""

    __slots__ = ("body", "status")

    def __init__(self, body: Json = None, status: int = 200) -> None:
        self.body = body
        self.status = status


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str | None, str | None, bytes]]:
    """(field name, file name, raw bytes) of every part; BadRequest naming what is wrong with a broken body.

    Parsed here rather than with `request.files`: the SDK sends image bytes as a part without a file name, which a
    form parser would decode as text (and mangle). `emulator.multipart` says why it is not werkzeug's parser.
    """
    try:
        return split_multipart(body, boundary_of(content_type))
    except MultipartError as exc:
        raise BadRequest(f"The multipart body cannot be parsed: {exc}.", code="BadRequestImageStream") from exc


class CustomVisionResponses:
    def __init__(self, backend, fetcher: UrlFetcher, prediction_fetcher: UrlFetcher,
                 package_fetcher: UrlFetcher | None = None) -> None:
        self.backend = backend
        self.fetcher = fetcher
        self.prediction_fetcher = prediction_fetcher
        self.package_fetcher = package_fetcher or fetcher

    def handler(self, operation: str) -> Callable[[Request, dict[str, str]], Reply]:
        return getattr(self, operation, self.not_supported)

    # ------------------------------------------------------------------ parameter helpers
    @staticmethod
    def _uuid(value: str, name: str, *, not_found: bool = False) -> str:
        try:
            return str(uuid.UUID(value))
        except (ValueError, AttributeError, TypeError):
            if not_found:
                raise NotFound(f"{name} {value!r} is not a valid id, so nothing has it.", code="NotFound") from None
            raise BadRequest(f"{name} {value!r} is not a valid uuid.", code="BadRequestInvalidIds") from None

    def _path_id(self, args: dict[str, str], name: str) -> str:
        return self._uuid(args[name], name, not_found=True)

    @staticmethod
    def _q(req: Request, name: str, required: bool = False) -> str | None:
        value = req.args.get(name)
        if required and (value is None or value == ""):
            raise BadRequest(f"The query parameter {name} is required.", code="BadRequestRequiredParamIsNull")
        return value

    @staticmethod
    def _bool(req: Request, name: str, default: bool = False) -> bool:
        value = req.args.get(name)
        if value is None or value == "":
            return default
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise BadRequest(f"The query parameter {name} must be true or false, not {value!r}.", code="BadRequest")

    @staticmethod
    def _int(req: Request, name: str, default: int) -> int:
        value = req.args.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise BadRequest(f"The query parameter {name} must be an integer, not {value!r}.",
                             code="BadRequest") from None
        if not INT32[0] <= number <= INT32[1]:
            raise BadRequest(f"The query parameter {name} must be a 32-bit integer; {value!r} is out of range.",
                             code="BadRequest")
        return number

    @staticmethod
    def _float(req: Request, name: str, default: float | None) -> float | None:
        value = req.args.get(name)
        if value is None or value == "":
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise BadRequest(f"The query parameter {name} must be a finite number, not {value!r}.", code="BadRequest")
        return number

    def _ids(self, req: Request, name: str, *, max_items: int | None = None) -> list[str]:
        raw = ",".join(v for v in req.args.getlist(name) if v)
        ids = [self._uuid(v.strip(), name) for v in raw.split(",") if v.strip()]
        if max_items is not None and len(ids) > max_items:
            raise BadRequest(f"{name} has {len(ids)} ids; at most {max_items} are allowed.",
                             code="BadRequestExceededBatchSize")
        return ids

    def _opt_id(self, req: Request, name: str) -> str | None:
        value = req.args.get(name)
        return self._uuid(value, name) if value else None

    @staticmethod
    def _json(req: Request, *, required: bool = True) -> Json:
        data = req.get_data(cache=True)
        if not data.strip():
            if required:
                raise BadRequest("The request needs a JSON body.", code="BadRequestRequiredParamIsNull")
            return None
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"The body is not valid JSON: {exc}.", code="BadRequest") from None

    @staticmethod
    def _image_parts(req: Request) -> list[tuple[str | None, bytes]]:
        """(file name, bytes) of each image in a multipart or raw (application/octet-stream) body."""
        content_type = req.headers.get("Content-Type", "")
        body = req.get_data(cache=False)
        if content_type.lower().startswith("multipart/"):
            return [(filename, data) for _, filename, data in parse_multipart(body, content_type)]
        return [(None, body)] if body else []

    def _single_image(self, req: Request) -> bytes:
        parts = self._image_parts(req)
        if not parts or not parts[0][1]:
            raise BadRequest("The request has no image data.", code="BadRequestImageStream")
        return parts[0][1]

    def _image_url(self, req: Request) -> str:
        body = self._json(req)
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            raise BadRequest("The body must be {\"url\": \"...\"}.", code="BadRequestImageUrl")
        return url

    def _fetch_for_prediction(self, fetcher: UrlFetcher, url: str) -> bytes:
        try:
            return fetcher.fetch(url)
        except FetchError as exc:
            raise BadRequest(f"The image URL could not be read: {exc}", code="BadRequestImageUrl") from exc

    @staticmethod
    def _base(req: Request) -> str:
        return req.host_url.rstrip("/")

    # ------------------------------------------------------------------ fallbacks
    def not_supported(self, req: Request, args: dict[str, str]) -> Reply:
        raise BadRequest(
            f"{args.get('_operation', 'This operation')} is not supported by the local Custom Vision service "
            "(it trains classification projects; object detection, regions and suggestions are not emulated).",
            code="BadRequestNotSupported")

    # ------------------------------------------------------------------ domains and projects
    def GetDomains(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_domains())

    def GetDomain(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_domain(self._path_id(args, "domainId")))

    def GetProjects(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_projects())

    def GetProject(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_project(self._path_id(args, "projectId")))

    def CreateProject(self, req: Request, args: dict[str, str]) -> Reply:
        domain_id = self._opt_id(req, "domainId")
        platforms = [p for p in ",".join(req.args.getlist("targetExportPlatforms")).split(",") if p]
        check_platforms_for_version(args.get("version", ""), platforms)
        return Reply(self.backend.create_project(
            self._q(req, "name", required=True), self._q(req, "description"), domain_id,
            self._q(req, "classificationType"), platforms))

    def UpdateProject(self, req: Request, args: dict[str, str]) -> Reply:
        project_id = self._path_id(args, "projectId")
        body = require_object(self._json(req), "a Project")
        optional_field(body, "name", str, "BadRequestProjectName")
        optional_field(body, "description", str, "BadRequestProjectDescription")
        settings = optional_field(body, "settings", dict, "BadRequestInvalid")
        if settings is not None:
            optional_field(settings, "domainId", str, "BadRequestProjectUnknownDomain", "settings.")
            optional_field(settings, "classificationType", str, "BadRequestProjectUnknownClassification", "settings.")
            platforms = optional_field(settings, "targetExportPlatforms", list,
                                       "BadRequestProjectUnsupportedExportPlatform", "settings.")
            if platforms is not None and not all(isinstance(p, str) for p in platforms):
                raise BadRequest("settings.targetExportPlatforms must be an array of platform names.",
                                 code="BadRequestProjectUnsupportedExportPlatform")
        if isinstance(settings, dict) and isinstance(settings.get("targetExportPlatforms"), list):
            version = args.get("version", "")
            check_platforms_for_version(version, settings["targetExportPlatforms"])
            if version == "v3.3":  # it never saw them (see for_version), so sending its list back must not drop them
                current = self.backend.get_project(project_id)["settings"]["targetExportPlatforms"]
                kept = [p for p in current if p in V34_ONLY_PLATFORMS and p not in settings["targetExportPlatforms"]]
                settings["targetExportPlatforms"] = [*settings["targetExportPlatforms"], *kept]
        return Reply(self.backend.update_project(project_id, body))

    def GetArtifact(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_artifact(self._path_id(args, "projectId"), self._q(req, "path", required=True)
                                               or ""))

    def ExportProject(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.export_project(self._path_id(args, "projectId"), base_url=self._base(req)))

    def ImportProject(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.import_project(self._q(req, "token", required=True) or "", self._q(req, "name"),
                                                 self.package_fetcher.fetch, base_url=self._base(req)))

    def DeleteProject(self, req: Request, args: dict[str, str]) -> Reply:
        self.backend.delete_project(self._path_id(args, "projectId"))
        return Reply(None, 204)

    # ------------------------------------------------------------------ tags
    def GetTags(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_tags(self._path_id(args, "projectId"), self._opt_id(req, "iterationId")))

    def GetTag(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_tag(self._path_id(args, "projectId"), self._path_id(args, "tagId"),
                                          self._opt_id(req, "iterationId")))

    def CreateTag(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.create_tag(self._path_id(args, "projectId"), self._q(req, "name", required=True),
                                             self._q(req, "description"), self._q(req, "type")))

    def UpdateTag(self, req: Request, args: dict[str, str]) -> Reply:
        body = require_object(self._json(req), "a Tag")
        optional_field(body, "name", str, "BadRequestTagName")
        optional_field(body, "description", str, "BadRequestTagDescription")
        optional_field(body, "type", str, "BadRequestTagType")
        return Reply(self.backend.update_tag(self._path_id(args, "projectId"), self._path_id(args, "tagId"), body))

    def DeleteTag(self, req: Request, args: dict[str, str]) -> Reply:
        self.backend.delete_tag(self._path_id(args, "projectId"), self._path_id(args, "tagId"))
        return Reply(None, 204)

    # ------------------------------------------------------------------ image uploads
    @staticmethod
    def _summary_reply(summary: dict[str, Any], all_ok: bool) -> Reply:
        return Reply(summary, 200 if all_ok else 207)

    def CreateImagesFromData(self, req: Request, args: dict[str, str]) -> Reply:
        project_id = self._path_id(args, "projectId")
        tag_ids = self._ids(req, "tagIds", max_items=20)
        sources = [ImageSource(label=f'"{filename or ""}"', data=data) for filename, data in self._image_parts(req)]
        return self._summary_reply(*self.backend.create_images(project_id, sources, tag_ids, base_url=self._base(req)))

    def _entry_tags(self, entry: dict[str, Any]) -> list[str]:
        tags = entry.get("tagIds") or []
        if not isinstance(tags, list):
            raise BadRequest("tagIds must be a list of tag ids.", code="BadRequestImageTags")
        return [self._uuid(str(t), "tagIds") for t in tags]

    def _batch(self, req: Request) -> tuple[list[dict[str, Any]], list[str], dict[str, str] | None]:
        body = self._json(req)
        if not isinstance(body, dict) or not isinstance(body.get("images"), list):
            raise BadRequest("The body must be a batch object with an images list.", code="BadRequestImageBatch")
        for n, entry in enumerate(body["images"]):
            if not isinstance(entry, dict):
                raise BadRequest(f"images[{n}] must be an object, not {json_type(entry)}.", code="BadRequestImageBatch")
            optional_field(entry, "name", str, "BadRequestImageBatch", f"images[{n}].")
            optional_field(entry, "contents", str, "BadRequestImageBatch", f"images[{n}].")
            optional_field(entry, "url", str, "BadRequestImageUrl", f"images[{n}].")
            if entry.get("regions"):
                raise BadRequest("Regions (object detection) are not supported by the local service.",
                                 code="BadRequestNotSupported")
        batch_tags = body.get("tagIds") or []
        if not isinstance(batch_tags, list):
            raise BadRequest("tagIds must be a list of tag ids.", code="BadRequestImageTags")
        return body["images"], [self._uuid(str(t), "tagIds") for t in batch_tags], body.get("metadata")

    def CreateImagesFromFiles(self, req: Request, args: dict[str, str]) -> Reply:
        project_id = self._path_id(args, "projectId")
        entries, batch_tags, metadata = self._batch(req)
        sources = []
        for entry in entries:
            name = entry.get("name") or ""
            try:
                data = base64.b64decode(entry.get("contents") or "", validate=True)
                sources.append(ImageSource(label=f'"{name}"', data=data, tag_ids=self._entry_tags(entry)))
            except (binascii.Error, ValueError):
                sources.append(ImageSource(label=f'"{name}"', data=None, tag_ids=self._entry_tags(entry),
                                           error_status="ErrorImageFormat"))
        return self._summary_reply(*self.backend.create_images(project_id, sources, batch_tags, metadata,
                                                               base_url=self._base(req)))

    def CreateImagesFromUrls(self, req: Request, args: dict[str, str]) -> Reply:
        project_id = self._path_id(args, "projectId")
        entries, batch_tags, metadata = self._batch(req)
        self.backend.get_project(project_id)  # refuse an unknown project before fetching anything
        if len(entries) > 64:  # checked again by the backend; here so nothing is fetched for a refused batch
            raise BadRequest(f"The batch has {len(entries)} images; at most 64 are allowed in one batch. Split it.",
                             code="BadRequestImageBatch")
        urls = []
        for entry in entries:
            url = entry.get("url")
            if not isinstance(url, str) or not url:
                raise BadRequest("Every entry of images needs a url.", code="BadRequestImageUrl")
            urls.append(url)
        fetched = self.fetcher.fetch_many(urls)
        sources = []
        for entry, url, data in zip(entries, urls, fetched, strict=True):
            if isinstance(data, FetchError):
                sources.append(ImageSource(label=url, data=None, tag_ids=self._entry_tags(entry),
                                           error_status="ErrorSource", error_message=str(data)))
            else:
                sources.append(ImageSource(label=url, data=data, tag_ids=self._entry_tags(entry)))
        return self._summary_reply(*self.backend.create_images(project_id, sources, batch_tags, metadata,
                                                               base_url=self._base(req)))

    def CreateImageTags(self, req: Request, args: dict[str, str]) -> Reply:
        body = self._json(req)
        entries = body.get("tags") if isinstance(body, dict) else None
        return Reply(self.backend.create_image_tags(self._path_id(args, "projectId"), entries))

    def DeleteImageTags(self, req: Request, args: dict[str, str]) -> Reply:
        self.backend.delete_image_tags(self._path_id(args, "projectId"), self._ids(req, "imageIds", max_items=64),
                                       self._ids(req, "tagIds", max_items=20))
        return Reply(None, 204)

    def UpdateImageMetadata(self, req: Request, args: dict[str, str]) -> Reply:
        project_id = self._path_id(args, "projectId")
        image_ids = self._ids(req, "imageIds", max_items=256)
        if not image_ids:
            raise BadRequest("The query parameter imageIds is required.", code="BadRequestRequiredParamIsNull")
        metadata = require_object(self._json(req), "metadata: string keys and values",
                                  code="BadRequestImageMetadataKey")
        summary, ok = self.backend.update_image_metadata(project_id, image_ids, metadata)
        return Reply(summary, 200 if ok else 207)

    # ------------------------------------------------------------------ image queries
    def _paging(self, req: Request) -> dict[str, Any]:
        order_by = self._q(req, "orderBy")
        if order_by not in (None, "", "Newest", "Oldest"):
            raise BadRequest(f"orderBy must be Newest or Oldest, not {order_by!r}.", code="BadRequest")
        return {"order_by": order_by or None, "take": self._int(req, "take", 50), "skip": self._int(req, "skip", 0)}

    def GetImages(self, req: Request, args: dict[str, str]) -> Reply:
        tagging = self._q(req, "taggingStatus") or "All"
        if tagging not in ("All", "Tagged", "Untagged"):
            raise BadRequest(f"taggingStatus must be All, Tagged or Untagged, not {tagging!r}.", code="BadRequest")
        return Reply(self.backend.get_images(
            self._path_id(args, "projectId"), iteration_id=self._opt_id(req, "iterationId"),
            tag_ids=self._ids(req, "tagIds", max_items=20), tagging=tagging, metadata_filter=self._q(req, "$filter"),
            base_url=self._base(req), **self._paging(req)))

    def GetTaggedImages(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_images(
            self._path_id(args, "projectId"), iteration_id=self._opt_id(req, "iterationId"),
            tag_ids=self._ids(req, "tagIds", max_items=20), tagging="Tagged", base_url=self._base(req),
            **self._paging(req)))

    def GetUntaggedImages(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_images(
            self._path_id(args, "projectId"), iteration_id=self._opt_id(req, "iterationId"), tagging="Untagged",
            base_url=self._base(req), **self._paging(req)))

    def GetImageCount(self, req: Request, args: dict[str, str]) -> Reply:
        tagging = self._q(req, "taggingStatus") or "All"
        if tagging not in ("All", "Tagged", "Untagged"):
            raise BadRequest(f"taggingStatus must be All, Tagged or Untagged, not {tagging!r}.", code="BadRequest")
        return Reply(self.backend.count_images(self._path_id(args, "projectId"),
                                               iteration_id=self._opt_id(req, "iterationId"),
                                               tag_ids=self._ids(req, "tagIds"), tagging=tagging,
                                               metadata_filter=self._q(req, "$filter")))

    def GetTaggedImageCount(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.count_images(self._path_id(args, "projectId"),
                                               iteration_id=self._opt_id(req, "iterationId"),
                                               tag_ids=self._ids(req, "tagIds"), tagging="Tagged"))

    def GetUntaggedImageCount(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.count_images(self._path_id(args, "projectId"),
                                               iteration_id=self._opt_id(req, "iterationId"), tagging="Untagged"))

    def GetImagesByIds(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_images_by_ids(self._path_id(args, "projectId"),
                                                    self._ids(req, "imageIds", max_items=256),
                                                    iteration_id=self._opt_id(req, "iterationId"),
                                                    base_url=self._base(req)))

    def DeleteImages(self, req: Request, args: dict[str, str]) -> Reply:
        all_images, all_iterations = self._bool(req, "allImages"), self._bool(req, "allIterations")
        self.backend.delete_images(self._path_id(args, "projectId"), self._ids(req, "imageIds", max_items=256),
                                   all_images=all_images, all_iterations=all_iterations)
        # The spec: either flag "will return a 202 response to indicate the images are being deleted".
        return Reply(None, 202 if all_images or all_iterations else 204)

    # ------------------------------------------------------------------ iterations
    def TrainProject(self, req: Request, args: dict[str, str]) -> Reply:
        body = self._json(req, required=False)
        selected = None
        if isinstance(body, dict) and body.get("selectedTags"):
            if not isinstance(body["selectedTags"], list):
                raise BadRequest("selectedTags must be a list of tag ids.", code="BadRequest")
            selected = [self._uuid(str(t), "selectedTags") for t in body["selectedTags"]]
        if isinstance(body, dict) and body.get("customBaseModelInfo"):
            raise BadRequest("customBaseModelInfo is not supported by the local service.",
                             code="BadRequestNotSupported")
        return Reply(self.backend.train_project(
            self._path_id(args, "projectId"), training_type=self._q(req, "trainingType"),
            reserved_budget_in_hours=self._int(req, "reservedBudgetInHours", 0),
            force_train=self._bool(req, "forceTrain"),
            notification_email_address=self._q(req, "notificationEmailAddress"), selected_tags=selected))

    def GetIterations(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_iterations(self._path_id(args, "projectId")))

    def GetIteration(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_iteration(self._path_id(args, "projectId"), self._path_id(args, "iterationId")))

    def UpdateIteration(self, req: Request, args: dict[str, str]) -> Reply:
        body = require_object(self._json(req), "an Iteration")
        optional_field(body, "name", str, "BadRequestIterationName")
        return Reply(self.backend.update_iteration(self._path_id(args, "projectId"),
                                                   self._path_id(args, "iterationId"), body))

    def DeleteIteration(self, req: Request, args: dict[str, str]) -> Reply:
        self.backend.delete_iteration(self._path_id(args, "projectId"), self._path_id(args, "iterationId"))
        return Reply(None, 204)

    def GetIterationPerformance(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_iteration_performance(
            self._path_id(args, "projectId"), self._path_id(args, "iterationId"),
            threshold=self._float(req, "threshold", 0.5), overlap_threshold=self._float(req, "overlapThreshold", None)))

    def GetImagePerformances(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_image_performances(
            self._path_id(args, "projectId"), self._path_id(args, "iterationId"),
            self._ids(req, "tagIds", max_items=20), base_url=self._base(req), **self._paging(req)))

    def GetImagePerformanceCount(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.count_image_performances(
            self._path_id(args, "projectId"), self._path_id(args, "iterationId"), self._ids(req, "tagIds")))

    def PublishIteration(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.publish_iteration(
            self._path_id(args, "projectId"), self._path_id(args, "iterationId"),
            self._q(req, "publishName", required=True), self._q(req, "predictionId", required=True),
            overwrite=self._bool(req, "overwrite")))

    def UnpublishIteration(self, req: Request, args: dict[str, str]) -> Reply:
        self.backend.unpublish_iteration(self._path_id(args, "projectId"), self._path_id(args, "iterationId"))
        return Reply(None, 204)

    def GetExports(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.get_exports(self._path_id(args, "projectId"), self._path_id(args, "iterationId"),
                                              base_url=self._base(req)))

    def ExportIteration(self, req: Request, args: dict[str, str]) -> Reply:
        platform = self._q(req, "platform", required=True) or ""
        check_platforms_for_version(args.get("version", ""), [platform])
        return Reply(self.backend.export_iteration(
            self._path_id(args, "projectId"), self._path_id(args, "iterationId"), platform, self._q(req, "flavor"),
            base_url=self._base(req)))

    # ------------------------------------------------------------------ quick test and stored predictions
    def QuickTestImage(self, req: Request, args: dict[str, str]) -> Reply:
        return Reply(self.backend.quick_test(self._path_id(args, "projectId"), self._single_image(req),
                                             iteration_id=self._opt_id(req, "iterationId"),
                                             store=self._bool(req, "store", True), base_url=self._base(req)))

    def QuickTestImageUrl(self, req: Request, args: dict[str, str]) -> Reply:
        project_id = self._path_id(args, "projectId")
        data = self._fetch_for_prediction(self.fetcher, self._image_url(req))
        return Reply(self.backend.quick_test(project_id, data, iteration_id=self._opt_id(req, "iterationId"),
                                             store=self._bool(req, "store", True), base_url=self._base(req)))

    def QueryPredictions(self, req: Request, args: dict[str, str]) -> Reply:
        token = require_object(self._json(req), "a PredictionQueryToken",
                               code="BadRequestPredictionInvalidQueryParameters")
        return Reply(self.backend.query_predictions(self._path_id(args, "projectId"), token,
                                                    base_url=self._base(req)))

    def DeletePrediction(self, req: Request, args: dict[str, str]) -> Reply:
        self.backend.delete_predictions(self._path_id(args, "projectId"), self._ids(req, "ids"))
        return Reply(None, 204)

    # ------------------------------------------------------------------ prediction API
    def _classify(self, req: Request, args: dict[str, str], data: bytes, store: bool) -> Reply:
        return Reply(self.backend.classify(self._path_id(args, "projectId"), args["publishedName"], data,
                                           store=store, application=self._q(req, "application"),
                                           base_url=self._base(req)))

    def ClassifyImage(self, req: Request, args: dict[str, str]) -> Reply:
        return self._classify(req, args, self._single_image(req), True)

    def ClassifyImageWithNoStore(self, req: Request, args: dict[str, str]) -> Reply:
        return self._classify(req, args, self._single_image(req), False)

    def ClassifyImageUrl(self, req: Request, args: dict[str, str]) -> Reply:
        url = self._image_url(req)
        self.backend.get_project(self._path_id(args, "projectId"))
        return self._classify(req, args, self._fetch_for_prediction(self.prediction_fetcher, url), True)

    def ClassifyImageUrlWithNoStore(self, req: Request, args: dict[str, str]) -> Reply:
        url = self._image_url(req)
        self.backend.get_project(self._path_id(args, "projectId"))
        return self._classify(req, args, self._fetch_for_prediction(self.prediction_fetcher, url), False)

    # ------------------------------------------------------------------ export packages (a downloadUri)
    def GetExportPackage(self, req: Request, args: dict[str, str]) -> tuple[bytes, str]:
        return self.backend.export_package(args["token"]), "application/zip"

    def GetProjectPackage(self, req: Request, args: dict[str, str]) -> tuple[bytes, str]:
        return self.backend.project_package(args["secret"]), "application/json"

    # ------------------------------------------------------------------ stored images
    def GetStoredImage(self, req: Request, args: dict[str, str]) -> tuple[bytes, str]:
        project_id = self._path_id(args, "projectId")
        image_id = self._path_id(args, "imageId")
        data = self.backend.get_image_bytes(project_id, image_id)
        if args["kind"] == "original":
            try:
                return data, imagelib.inspect_image(data, max_bytes=len(data) + 1).content_type
            except imagelib.ImageRejected:
                return data, "application/octet-stream"
        return imagelib.rendition(data, args["kind"])


# What v3.4-preview added that v3.3's spec does not have: fields (dropped from v3.3 answers), image statuses (mapped to
# the nearest v3.3 status), and the OpenVino export platform (left out of v3.3 lists, refused in v3.3 requests).
# A v3.3 client (older SDKs, generated clients) may reject an enum value it does not know, so none may leak.
V33_DROPPED_FIELDS = frozenset({"exportablePlatforms", "modelInformation", "trainingErrorDetails", "customBaseModelInfo"})
V33_STATUS = {"ErrorImageDimensions": "ErrorImageSize", "ErrorInvalidTag": "ErrorUnknown"}
V33_PLATFORM_LISTS = frozenset({"exportableTo", "targetExportPlatforms"})
V34_ONLY_PLATFORMS = frozenset({"OpenVino"})


def check_platforms_for_version(version: str, platforms: list[str]) -> None:
    """Refuse an export platform the request's API version does not define (its spec's enum lacks it)."""
    unknown = [p for p in platforms if version == "v3.3" and p in V34_ONLY_PLATFORMS]
    if unknown:
        raise BadRequest(f"Export platform {unknown[0]!r} does not exist in Training API v3.3; call v3.4-preview to "
                         "use it.", code="BadRequestProjectUnsupportedExportPlatform")


def for_version(api: str, version: str, operation: str, body: Json) -> Json:
    """Shape an answer for an older API version (drop fields and enum values the older spec does not have)."""
    if api == "training" and version == "v3.3":
        return _strip_v33(body)
    if api == "prediction" and version == "v3.0" and isinstance(body, dict):
        for p in body.get("predictions") or []:
            p.pop("tagType", None)
    return body


def _strip_v33(body: Json) -> Json:
    if isinstance(body, list):
        return [_strip_v33(b) for b in body]
    if not isinstance(body, dict):
        return body
    out = {}
    for k, v in body.items():
        if k in V33_DROPPED_FIELDS:
            continue
        if k == "status" and v in V33_STATUS and "sourceUrl" in body:
            v = V33_STATUS[v]
        if k in V33_PLATFORM_LISTS and isinstance(v, list):
            v = [p for p in v if p not in V34_ONLY_PLATFORMS]
        out[k] = _strip_v33(v)
    return out


__all__ = ["CustomVisionResponses", "Reply", "for_version", "parse_multipart"]

"""HTTP translation for the two moderation operations the local service serves beside Custom Vision.

* Computer Vision 3.2 ``POST /vision/v3.2/analyze`` (AnalyzeImage): the image as ``application/octet-stream`` (what
  ``ComputerVisionClient.analyze_image_in_stream`` sends), ``multipart/form-data``, or JSON ``{"url": ...}``. Only the
  ``Adult`` visual feature is emulated; asking for another is a 400 ``NotSupportedVisualFeature`` that says so.
  Errors are the spec's ``ComputerVisionErrorResponse``: ``{"error": {"code": "InvalidRequest", "message",
  "innererror": {"code": "InvalidImageFormat" ...}}}``. Input as Microsoft Learn documents it for 3.2: JPEG, PNG, GIF,
  BMP; under 4 MB; more than 50 x 50 px.
* Content Safety ``POST /contentsafety/image:analyze?api-version=2023-10-01|2024-09-01``
  (ImageOperations_AnalyzeImage): JSON ``{"image": {"content": "<base64>"} | {"blobUrl": "..."}, "categories": [...],
  "outputType": "FourSeverityLevels"}``. Errors are ``{"error": {"code", "message"}}`` with header ``x-ms-error-code``.
  Input as the spec's ``ImageData`` says: at most 4 MB, 50 x 50 to 2,048 x 2,048 px; JPEG, PNG, GIF, BMP, TIFF, WEBP.

Both answer from :mod:`emulator.moderation_detector`, a colour measure of the pixels: a stand-in, not a moderation
model (its docstring says what it measures and why). The limits here are the service's own copy (see DESIGN.md: a
stand-in must not share the client's assumptions).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import uuid
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError
from werkzeug.wrappers import Request

from . import moderation_detector
from .fetch import FetchError, UrlFetcher
from .moderation_errors import ComputerVisionError, ContentSafetyError
from .multipart import MultipartError, boundary_of, split_multipart
from .responses import Reply, json_type

MB = 1024 * 1024

# Computer Vision 3.2 (Microsoft Learn, "Call the Image Analysis 3.2 API": image requirements).
CV_MAX_BYTES = 4 * MB
CV_MIN_SIDE = 50
CV_MAX_SIDE = 16_000
CV_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP"})
CV_VISUAL_FEATURES = ("Categories", "Tags", "Description", "Faces", "ImageType", "Color", "Adult", "Objects", "Brands")
CV_LANGUAGES = frozenset([
    "ar", "az", "bg", "bs", "ca", "cs", "cy", "da", "de", "el", "en", "es", "et", "eu", "fi", "fr", "ga", "gl",
    "he", "hi", "hr", "hu", "id", "it", "ja", "kk", "ko", "lt", "lv", "mk", "ms", "nb", "nl", "pl", "prs", "pt",
    "pt-BR", "pt-PT", "ro", "ru", "sk", "sl", "sr-Cyrl", "sr-Latn", "sv", "th", "tr", "uk", "vi", "zh-Hans",
    "zh-Hant",
])
CV_MODEL_VERSIONS = ("latest", "2021-04-01", "2021-05-01")
CV_MODEL_VERSION = "2021-05-01"

# Content Safety (the 2024-09-01 spec's ImageData; Microsoft Learn's input requirements).
CS_API_VERSIONS = ("2023-10-01", "2024-09-01")
CS_MAX_BYTES = 4 * MB
CS_MIN_SIDE = 50
CS_MAX_SIDE = 2048
CS_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"})
CS_OUTPUT_TYPES = ("FourSeverityLevels",)


def _open(data: bytes, *, formats: frozenset[str], max_bytes: int, min_side: int,
          max_side: int) -> tuple[Image.Image | None, str, str]:
    """The decoded first frame, or (None, problem kind, message). Kinds: format, size, dimensions.

    The byte count and the header's dimensions are checked before any pixel is decoded; then the frame is decoded in
    full, so a truncated file is refused rather than analysed in part."""
    if not data:
        return None, "format", "The image is empty (0 bytes)."
    if len(data) > max_bytes:
        return None, "size", f"The image is {len(data)} bytes; at most {max_bytes} bytes ({max_bytes // MB} MB) are " \
                              "accepted. Resize or recompress it."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the side limits below are the rule
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None, "format", "The input data is not a valid image (it cannot be decoded)."
    if image.format not in formats:
        return None, "format", (f"The image format {image.format or 'unknown'} is not supported; use "
                                f"{', '.join(sorted(formats))}.")
    width, height = image.size
    if min(width, height) < min_side or max(width, height) > max_side:
        return None, "dimensions", (f"The image is {width}x{height} px; each side must be from {min_side} to "
                                    f"{max_side} px.")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError):
        return None, "format", "The input data is not a valid image (it is truncated or damaged)."
    return image, "", ""


class ModerationResponses:
    """Handlers for AnalyzeImage (Computer Vision 3.2) and ImageOperations_AnalyzeImage (Content Safety)."""

    def __init__(self, fetcher: UrlFetcher) -> None:
        self.fetcher = fetcher

    def handler(self, operation: str) -> Any:
        return getattr(self, operation)

    # ------------------------------------------------------------------ Computer Vision 3.2
    @staticmethod
    def _csv(req: Request, name: str) -> list[str]:
        return [v.strip() for raw in req.args.getlist(name) for v in raw.split(",") if v.strip()]

    def _cv_image(self, req: Request) -> bytes:
        content_type = req.headers.get("Content-Type", "").lower()
        body = req.get_data(cache=False)
        if content_type.startswith("application/octet-stream"):
            return body
        if content_type.startswith("multipart/form-data"):
            try:
                parts = split_multipart(body, boundary_of(req.headers.get("Content-Type", "")))
            except MultipartError as exc:
                raise ComputerVisionError(f"The multipart body cannot be read: {exc}.",
                                          inner="InvalidImageFormat") from exc
            return parts[0][2] if parts else b""
        if content_type.startswith("application/json"):
            try:
                document = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise ComputerVisionError("The body is not valid JSON.", inner="BadArgument") from None
            url = document.get("url") if isinstance(document, dict) else None
            if not isinstance(url, str) or not url:
                raise ComputerVisionError('The body must be {"url": "<image URL>"}.', inner="InvalidImageUrl")
            try:
                return self.fetcher.fetch(url)
            except FetchError as exc:
                raise ComputerVisionError(f"The image URL could not be read: {exc}", inner="InvalidImageUrl") from exc
        raise ComputerVisionError(
            f"Content-Type {req.headers.get('Content-Type') or '(none)'} is not supported: send the image as "
            "application/octet-stream or multipart/form-data, or its URL as application/json.",
            inner="UnsupportedMediaType", status=415)

    def AnalyzeImage(self, req: Request, args: dict[str, str]) -> Reply:
        features = self._csv(req, "visualFeatures")
        unknown = [f for f in features if f.lower() not in {v.lower() for v in CV_VISUAL_FEATURES}]
        if unknown:
            raise ComputerVisionError(f"visualFeatures {', '.join(unknown)} is not a visual feature; valid ones are "
                                      f"{', '.join(CV_VISUAL_FEATURES)}.", inner="NotSupportedVisualFeature")
        if [f.lower() for f in features] != ["adult"] * len(features) or not features:
            raise ComputerVisionError(
                "The local service emulates only visualFeatures=Adult of Analyze Image (adult, racy and gore scores); "
                f"{', '.join(features) or 'no visualFeatures (the service default, Categories)'} is not emulated.",
                inner="NotSupportedVisualFeature")
        if self._csv(req, "details"):
            raise ComputerVisionError("details (Celebrities, Landmarks) are not emulated by the local service.",
                                      inner="InvalidDetails")
        excluded = self._csv(req, "descriptionExclude")
        if any(e not in ("Celebrities", "Landmarks") for e in excluded):
            raise ComputerVisionError("descriptionExclude may only name Celebrities and Landmarks.",
                                      inner="BadArgument")
        language = req.args.get("language", "en")
        if language not in CV_LANGUAGES:
            raise ComputerVisionError(f"language {language!r} is not supported.", inner="NotSupportedLanguage")
        model_version = req.args.get("model-version", "latest")
        if model_version not in CV_MODEL_VERSIONS:
            raise ComputerVisionError(f"model-version {model_version!r} is not available; use one of "
                                      f"{', '.join(CV_MODEL_VERSIONS)}.", inner="BadArgument")
        data = self._cv_image(req)
        image, problem, message = _open(data, formats=CV_FORMATS, max_bytes=CV_MAX_BYTES, min_side=CV_MIN_SIDE,
                                        max_side=CV_MAX_SIDE)
        if image is None:
            raise ComputerVisionError(message, inner="InvalidImageFormat" if problem == "format" else "InvalidImageSize")
        with image:
            analysis = moderation_detector.analyse(image)
            metadata = {"width": image.width, "height": image.height, "format": image.format.capitalize()}
        return Reply({"adult": analysis.adult_info(), "requestId": str(uuid.uuid4()), "metadata": metadata,
                      "modelVersion": CV_MODEL_VERSION})

    # ------------------------------------------------------------------ Content Safety
    def _cs_image(self, image_data: Any) -> bytes:
        if not isinstance(image_data, dict):
            raise ContentSafetyError(f"image must be an object with content or blobUrl, not {json_type(image_data)}.")
        content, blob_url = image_data.get("content"), image_data.get("blobUrl")
        unknown = sorted(set(image_data) - {"content", "blobUrl"})
        if unknown:
            raise ContentSafetyError(f"image has unknown field(s) {', '.join(unknown)}; it takes content or blobUrl.")
        if content is not None and blob_url is not None:
            raise ContentSafetyError("image has both content and blobUrl; give exactly one.")
        if content is None and blob_url is None:
            raise ContentSafetyError("image needs content (the image's bytes in base64) or blobUrl.")
        if content is not None:
            if not isinstance(content, str):
                raise ContentSafetyError(f"image.content must be a base64 string, not {json_type(content)}.")
            try:
                return base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise ContentSafetyError("image.content is not valid base64.") from None
        if not isinstance(blob_url, str) or not blob_url:
            raise ContentSafetyError(f"image.blobUrl must be a URL, not {json_type(blob_url)}.")
        try:
            return self.fetcher.fetch(blob_url)
        except FetchError as exc:
            raise ContentSafetyError(f"image.blobUrl could not be read: {exc}") from exc

    def ImageOperations_AnalyzeImage(self, req: Request, args: dict[str, str]) -> Reply:
        version = req.args.get("api-version")
        if not version:
            raise ContentSafetyError("The api-version query parameter is required (2023-10-01 or 2024-09-01).",
                                     code="MissingApiVersionParameter")
        if version not in CS_API_VERSIONS:
            raise ContentSafetyError(f"api-version {version!r} is not supported for image:analyze; use "
                                     f"{' or '.join(CS_API_VERSIONS)}.", code="UnsupportedApiVersionValue")
        try:
            body = json.loads(req.get_data(cache=False))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ContentSafetyError("The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ContentSafetyError(f"The body must be a JSON object, not {json_type(body)}.")
        unknown = sorted(set(body) - {"image", "categories", "outputType"})
        if unknown:
            raise ContentSafetyError(f"The body has unknown field(s) {', '.join(unknown)}.")
        categories = body.get("categories")
        if categories is None or categories == []:  # "If they are not assigned, a default set" (the spec): all four
            categories = list(moderation_detector.CATEGORIES)
        if not isinstance(categories, list) or any(c not in moderation_detector.CATEGORIES for c in categories):
            raise ContentSafetyError(f"categories must be a list of {', '.join(moderation_detector.CATEGORIES)}.")
        output_type = body.get("outputType", "FourSeverityLevels")
        if output_type not in CS_OUTPUT_TYPES:
            raise ContentSafetyError(f"outputType {output_type!r} is not available for images; use "
                                     "FourSeverityLevels.")
        data = self._cs_image(body.get("image"))
        image, _, message = _open(data, formats=CS_FORMATS, max_bytes=CS_MAX_BYTES, min_side=CS_MIN_SIDE,
                                  max_side=CS_MAX_SIDE)
        if image is None:
            raise ContentSafetyError(message)
        with image:
            severities = moderation_detector.analyse(image).severities
        wanted = [c for c in moderation_detector.CATEGORIES if c in categories]  # the spec's order, once each
        return Reply({"categoriesAnalysis": [{"category": c, "severity": severities[c]} for c in wanted]})


__all__ = ["CS_API_VERSIONS", "ModerationResponses"]

"""Moderation with Azure AI Content Safety (``ContentSafetyClient.analyze_image``), the successor of Computer Vision
3.2's adult/racy/gore scores: severities 0, 2, 4, 6 for Sexual, Violence, Hate and SelfHarm.

Thin, like :mod:`functions.vision`: pacing and retries are :mod:`cvops.pacing`'s and :mod:`cvops.retry`'s (429
``TooManyRequests``, 503 ``ServerBusy`` and 500 ``InternalError`` are retried, the rate of 1,000 requests per 10 s is
paced); this module checks the image against the service's input limits before the call and says what each failure
means for a routed image.

Limits (the 2024-09-01 spec's ``ImageData`` and Microsoft Learn): at most 4 MB; 50 to 2,048 px per side; JPEG, PNG,
GIF, BMP, TIFF, WEBP. The bytes reaching here already passed :func:`functions.images.normalise` (Custom Vision's
limits: 4 MB, JPEG/PNG/BMP/GIF), so what is left is the side: an image over 2,048 px is shrunk to fit, as
:mod:`functions.images` shrinks for Custom Vision (the verdict stays meaningful: Content Safety itself analyses a
downscaled picture); one under 50 px cannot be made meaningful (upscaling invents pixels), so it gets a record saying
why instead of a call.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image

from cvops import limits, pacing, retry
from cvops.clients import CONTENT_SAFETY_API_VERSION as API_VERSION
from cvops.errors import ConfigurationError, ServiceError
from functions import images
from functions.vision import ImageRefused, Moderation, ServiceCounters

__all__ = ["API_VERSION", "MAX_SIDE", "MIN_SIDE", "Prepared", "moderate", "prepare"]

MAX_BYTES = limits.CONTENT_SAFETY_MAX_BYTES
MIN_SIDE = limits.CONTENT_SAFETY_MIN_SIDE
MAX_SIDE = 2048  # the spec's and overview's 2,048 px (one quickstart says 7,200)
FORMATS = limits.CONTENT_SAFETY_FORMATS
SERVICE = "content_safety"


@dataclass(frozen=True)
class Prepared:
    """The bytes to send, and what was done to them (empty: the original bytes)."""

    data: bytes
    changes: tuple[str, ...] = ()


def prepare(data: bytes) -> Prepared | ImageRefused:
    """The image within Content Safety's limits, or why it cannot be (pure: bytes in, bytes or a refusal out)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format or "unknown", image.size
            if fmt not in FORMATS:
                return ImageRefused(SERVICE, "UnsupportedFormat",
                                    f"Content Safety analyses JPEG, PNG, GIF, BMP, TIFF and WEBP, not {fmt}")
            if min(width, height) < MIN_SIDE:
                return ImageRefused(SERVICE, "ImageTooSmall",
                                    f"the image is {width}x{height} px; Content Safety needs at least {MIN_SIDE} px "
                                    "per side, and enlarging it would only invent pixels to judge")
            if max(width, height) <= MAX_SIDE and len(data) <= MAX_BYTES:
                return Prepared(data)
            if fmt == "JPEG":
                image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode at a reduced scale when it still covers the target
            # This second decode counts against the process's image memory pool, as an in-process model's does:
            # decoded pixels (up to 4 bytes each), their RGB copy (3), and the input bytes held twice.
            pixels = image.size[0] * image.size[1]
            with images.reserved(pixels * 7 + 2 * len(data)):
                frame = image.convert("RGB")
                frame.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return ImageRefused(SERVICE, "UnreadableImage", f"the image cannot be decoded for Content Safety ({exc})")
    if min(frame.size) < MIN_SIDE:
        return ImageRefused(SERVICE, "ImageTooSmall",
                            f"the image is {width}x{height} px: shrunk to Content Safety's {MAX_SIDE} px its short "
                            f"side would be under {MIN_SIDE} px")
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=90)
    return Prepared(out.getvalue(), (f"shrunk_to_{frame.width}x{frame.height}_for_content_safety",))


def moderate(client: Any, *, data: bytes, pacer: pacing.Pacer | None, what: str,
             policy: retry.RetryPolicy = retry.RetryPolicy()) -> Moderation | ImageRefused:  # noqa: B008
    """Severities per category for ``data``; an :class:`ImageRefused` when the image cannot be analysed."""
    from azure.ai.contentsafety.models import AnalyzeImageOptions, ImageData

    prepared = prepare(data)
    if isinstance(prepared, ImageRefused):
        return prepared
    counters = ServiceCounters()
    started = time.perf_counter()
    options = AnalyzeImageOptions(image=ImageData(content=prepared.data))
    try:
        result = retry.call(lambda: client.analyze_image(options), what=what, pacer=pacer, idempotent=True,
                            on_retry=counters.on_retry, policy=policy)
    except ServiceError as exc:
        if exc.status == 401:
            raise ConfigurationError(exc.message, setting="VISION_MODERATION_KEY",
                                     hint="set VISION_MODERATION_KEY to a key of the Content Safety resource at "
                                          "VISION_MODERATION_ENDPOINT, or leave it empty and give the app's "
                                          "identity Cognitive Services User on that resource") from exc
        if exc.status in (403, 404):
            raise ConfigurationError(exc.message, setting="VISION_MODERATION_ENDPOINT",
                                     hint="point VISION_MODERATION_ENDPOINT at a Content Safety resource (kind "
                                          "ContentSafety or a multi-service AI resource)") from exc
        if exc.status in (400, 413):
            # The request is fixed (one image, content only): a 400 is about the image (InvalidRequestBody).
            return ImageRefused(SERVICE, exc.code, exc.message)
        raise
    severities = {str(item.category): int(item.severity or 0) for item in result.categories_analysis}
    raw = {"categoriesAnalysis": [{"category": str(i.category), "severity": i.severity}
                                  for i in result.categories_analysis]}
    return Moderation(severities, {}, counters, (time.perf_counter() - started) * 1000, api="content-safety",
                      api_version=API_VERSION, raw=raw, changes=prepared.changes)


"""What the service checks about an image's bytes before it accepts it, and the smaller renditions it serves.

Pure functions over bytes (Pillow does the decoding), so the limits are tested without a server.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Custom Vision's documented limits (Microsoft Learn, "Limits and quotas").
MAX_TRAINING_IMAGE_BYTES = 6 * 1024 * 1024
MAX_PREDICTION_IMAGE_BYTES = 4 * 1024 * 1024
MAX_SIDE_PIXELS = 10_240
MAX_ASPECT_RATIO = 25.0
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "GIF"})
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "GIF": "image/gif"}

THUMBNAIL_SIDE = 170  # what the portal shows
RESIZED_SHORT_SIDE = 512  # a working copy, like the service's resized image


class ImageRejected(ValueError):
    """The bytes cannot be a training or prediction image; `status` is the `ImageCreateStatus` it maps to."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    sha256: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def inspect_image(data: bytes, *, max_bytes: int = MAX_TRAINING_IMAGE_BYTES) -> ImageInfo:
    """Check size, format, decodability and dimensions; raise ImageRejected naming the broken rule."""
    if len(data) > max_bytes:
        raise ImageRejected(
            "ErrorImageSize",
            f"Image is {len(data)} bytes; the limit is {max_bytes} bytes ({max_bytes // (1024 * 1024)} MB). "
            "Resize or recompress it.",
        )
    if not data:
        raise ImageRejected("ErrorImageFormat", "Image is empty (0 bytes).")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            if fmt not in ACCEPTED_FORMATS:
                raise ImageRejected(
                    "ErrorImageFormat", f"Image format {fmt or 'unknown'} is not supported; use JPEG, PNG, BMP or GIF."
                )
            img.load()  # decode fully: a truncated file is refused here, not at training time
    except ImageRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(
            "ErrorImageFormat", f"Image cannot be decoded as JPEG, PNG, BMP or GIF ({type(exc).__name__})."
        ) from exc
    if max(width, height) > MAX_SIDE_PIXELS:
        raise ImageRejected(
            "ErrorImageDimensions", f"Image is {width}x{height}; the longest side may be at most {MAX_SIDE_PIXELS} px."
        )
    if max(width, height) / max(1, min(width, height)) > MAX_ASPECT_RATIO:
        raise ImageRejected(
            "ErrorImageDimensions", f"Image is {width}x{height}; the aspect ratio may be at most {MAX_ASPECT_RATIO:g}:1."
        )
    return ImageInfo(format=fmt, width=width, height=height, sha256=hashlib.sha256(data).hexdigest())


def rendition(data: bytes, kind: str) -> tuple[bytes, str]:
    """A JPEG thumbnail or resized copy of a stored image (made on demand: cheap, and nothing extra is stored)."""
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        if kind == "thumbnail":
            img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        else:
            scale = RESIZED_SHORT_SIDE / min(img.size)
            if scale < 1:
                img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=85)
    return out.getvalue(), "image/jpeg"

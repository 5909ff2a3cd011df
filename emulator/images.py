"""What the service checks about an image's bytes before it accepts it, and the smaller renditions it serves.

Pure functions over bytes (Pillow does the decoding), so the limits are tested without a server.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class DecodedImage:
    """Bytes that passed every check, with their pixels already decoded, so nothing downstream decodes them again.

    `pixels` is the first frame as stored (EXIF orientation not applied, mode unchanged); a JPEG decoded with
    `reduce_to` is smaller than `width` x `height`, which are always the stored image's own dimensions.
    """

    format: str
    width: int
    height: int
    pixels: Image.Image = field(repr=False)
    data: bytes = field(repr=False)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    def sha256(self) -> str:
        """Hex SHA-256 of the bytes (what duplicate detection compares); computed on demand, predictions need none."""
        return hashlib.sha256(self.data).hexdigest()

    def info(self) -> ImageInfo:
        return ImageInfo(format=self.format, width=self.width, height=self.height, sha256=self.sha256())


def decode_image(data: bytes, *, max_bytes: int = MAX_TRAINING_IMAGE_BYTES,
                 reduce_to: tuple[int, int] | None = None) -> DecodedImage:
    """Check size, format, dimensions and decodability, decoding the pixels once; ImageRejected naming the broken rule.

    The header is checked before any pixel is decoded (an oversized image costs nothing). `reduce_to` lets a JPEG
    decode at a reduced scale (1/2, 1/4 or 1/8, never below that size): several times cheaper, and just as strict,
    because the decoder still reads every byte of the stream, so a truncated or damaged file is refused all the same.
    """
    if len(data) > max_bytes:
        raise ImageRejected(
            "ErrorImageSize",
            f"Image is {len(data)} bytes; the limit is {max_bytes} bytes ({max_bytes // (1024 * 1024)} MB). "
            "Resize or recompress it.",
        )
    if not data:
        raise ImageRejected("ErrorImageFormat", "Image is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the side limits below are the rule
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageRejected(
            "ErrorImageDimensions", f"Image has far too many pixels ({exc}); the longest side may be at most "
            f"{MAX_SIDE_PIXELS} px.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _undecodable(exc) from exc
    fmt = img.format or ""
    width, height = img.size
    if fmt not in ACCEPTED_FORMATS:
        img.close()
        raise ImageRejected(
            "ErrorImageFormat", f"Image format {fmt or 'unknown'} is not supported; use JPEG, PNG, BMP or GIF.")
    if max(width, height) > MAX_SIDE_PIXELS:
        img.close()
        raise ImageRejected(
            "ErrorImageDimensions", f"Image is {width}x{height}; the longest side may be at most {MAX_SIDE_PIXELS} px.")
    if max(width, height) / max(1, min(width, height)) > MAX_ASPECT_RATIO:
        img.close()
        raise ImageRejected(
            "ErrorImageDimensions", f"Image is {width}x{height}; the aspect ratio may be at most {MAX_ASPECT_RATIO:g}:1.")
    try:
        if reduce_to is not None and fmt == "JPEG":
            img.draft("RGB", reduce_to)
        img.load()  # decode fully: a truncated file is refused here, not at training time
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        img.close()
        raise _undecodable(exc) from exc
    return DecodedImage(format=fmt, width=width, height=height, pixels=img, data=data)


def _undecodable(exc: Exception) -> ImageRejected:
    return ImageRejected("ErrorImageFormat",
                         f"Image cannot be decoded as JPEG, PNG, BMP or GIF ({type(exc).__name__}).")


def inspect_image(data: bytes, *, max_bytes: int = MAX_TRAINING_IMAGE_BYTES) -> ImageInfo:
    """Check size, format, decodability and dimensions; raise ImageRejected naming the broken rule."""
    decoded = decode_image(data, max_bytes=max_bytes)
    decoded.pixels.close()
    return decoded.info()


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

"""Validate and normalise an incoming image before it is sent to the Prediction API: bytes in, a verdict out.

Why a pure function of bytes: every bad file an operator meets (empty upload, interrupted upload, a text file named
`.jpg`, a TIFF from a scanner, a 16-bit medical PNG, a CMYK print JPEG, an animated GIF, a phone photo rotated by EXIF,
a 100 MP panorama, a decompression bomb) must get the same answer in the Function, the HTTP API and the tests, with
no service involved. What can be made acceptable to Custom Vision (JPEG/PNG/BMP/GIF, at most 4 MB, longest side at
most 10,240 px) is converted and the reason recorded; what cannot is a :class:`Rejection` with a code and a message,
which the caller turns into a quarantine record. The original bytes are never modified: the copy that is routed is
the original; only the bytes sent for prediction are normalised.

Fast path: an image that needs no change is only checked to be complete (its end marker, or a decode when it has
none) and its original bytes are sent as they are.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ACCEPTED_FORMATS",
    "CONVERTIBLE_FORMATS",
    "Limits",
    "NormalisedImage",
    "Rejection",
    "normalise",
]

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "GIF"})
"""What the Prediction API accepts as is (Custom Vision limits page)."""
CONVERTIBLE_FORMATS = frozenset({"TIFF", "WEBP"})
"""Formats cameras and scanners produce that Pillow decodes safely: converted to PNG or JPEG before prediction."""

_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_NEEDS_RGB_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV", "RGBX"})
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, IndexError, TypeError, Image.DecompressionBombError)

# Our own pixel limit (Limits.max_pixels) is what decides; Pillow's global warning below it would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class Limits:
    """What the Prediction API accepts and what this process is willing to decode.

    ``max_pixels`` guards memory: a 100 KB PNG can declare 50,000 x 50,000 pixels (7.5 GB decoded). 120 MP covers
    the largest camera sensors and a 10,240 px square, and decodes in about 360 MB.
    """

    max_bytes: int = 4 * 1024 * 1024
    max_side: int = 10_240
    max_aspect_ratio: float = 25.0
    max_pixels: int = 120_000_000
    jpeg_qualities: tuple[int, ...] = (90, 80, 70)
    min_side_when_shrinking: int = 512


@dataclass(frozen=True)
class NormalisedImage:
    """Bytes ready for the Prediction API, and what was done to get them (empty ``changes``: the original bytes)."""

    data: bytes
    format: str
    width: int
    height: int
    original_format: str
    original_width: int
    original_height: int
    original_bytes: int
    changes: tuple[str, ...] = field(default=())

    @property
    def unchanged(self) -> bool:
        return not self.changes

    def summary(self) -> dict:
        """Plain data for a result record."""
        return {
            "format": self.format, "width": self.width, "height": self.height, "bytes": len(self.data),
            "original_format": self.original_format, "original_width": self.original_width,
            "original_height": self.original_height, "original_bytes": self.original_bytes,
            "changes": list(self.changes),
        }


@dataclass(frozen=True)
class Rejection:
    """Why an image cannot be classified. ``reason`` is a stable code (for queries), ``message`` says it to a person."""

    reason: str
    message: str

    def summary(self) -> dict:
        return {"reason": self.reason, "message": self.message}


def normalise(data: bytes, limits: Limits = Limits()) -> NormalisedImage | Rejection:  # noqa: B008 - frozen dataclass
    """Check ``data`` is one complete, supported image within ``limits``; fix what can be fixed.

    Rejection codes: ``empty``, ``not_an_image``, ``unsupported_format``, ``truncated``, ``corrupt``,
    ``decompression_bomb``, ``bad_aspect_ratio``, ``too_large``.
    """
    if not data:
        return Rejection("empty", "the blob is empty (0 bytes): an upload that never completed, or a placeholder")
    opened = _open(data, limits)
    if isinstance(opened, Rejection):
        return opened
    image = opened
    fmt = image.format or "unknown"
    width, height = image.size
    if max(width, height) > limits.max_aspect_ratio * min(width, height):
        return Rejection("bad_aspect_ratio",
                         f"{fmt} image {width}x{height} has an aspect ratio above {limits.max_aspect_ratio:g}:1, "
                         "which Custom Vision refuses; crop it before uploading")

    try:
        needed = _changes_needed(data, image, limits)
    except _DECODE_ERRORS as exc:  # reading EXIF or counting frames can hit the end of a damaged file
        return _decode_failure(fmt, exc)
    if not needed:
        problem = _check_complete(data, fmt)
        if problem:
            return problem
        return NormalisedImage(data=data, format=fmt, width=width, height=height, original_format=fmt,
                               original_width=width, original_height=height, original_bytes=len(data))
    try:
        return _convert(data, image, needed, limits)
    except _DECODE_ERRORS as exc:
        return _decode_failure(fmt, exc)


def _open(data: bytes, limits: Limits) -> Image.Image | Rejection:
    """Parse the header only; name the format when it is one Pillow knows but we do not accept."""
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(ACCEPTED_FORMATS | CONVERTIBLE_FORMATS))
    except Image.DecompressionBombError as exc:
        return Rejection("decompression_bomb", f"the image declares more pixels than can be decoded safely ({exc})")
    except UnidentifiedImageError:
        return _identify_other(data)
    except _DECODE_ERRORS as exc:
        return _decode_failure("image", exc)
    width, height = image.size
    if width <= 0 or height <= 0:
        return Rejection("corrupt", f"{image.format} header declares a {width}x{height} image")
    if width * height > limits.max_pixels:
        return Rejection("decompression_bomb",
                         f"{image.format} image declares {width}x{height} = {width * height:,} pixels, above the "
                         f"{limits.max_pixels:,} this function decodes (a decompression bomb or an extreme scan); "
                         "downscale it before uploading")
    return image


def _identify_other(data: bytes) -> Rejection:
    """Not one of ours: is it another image format (say which), or not an image at all?"""
    try:
        with Image.open(io.BytesIO(data)) as other:
            fmt = other.format or "unknown"
    except Exception:  # any failure here means "not an image we can name"
        head = data[:16]
        kind = "text" if _looks_like_text(head) else "binary data"
        return Rejection("not_an_image", f"the blob is not an image ({kind} of {len(data):,} bytes)")
    return Rejection("unsupported_format",
                     f"{fmt} images are not supported; use JPEG, PNG, BMP or GIF "
                     f"(TIFF and WebP are converted automatically)")


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(b >= 9 for b in head)


def _decode_failure(fmt: str, exc: BaseException) -> Rejection:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombError):
        return Rejection("decompression_bomb", f"the image declares more pixels than can be decoded safely ({text})")
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return Rejection("truncated", f"{fmt} image is truncated: the file ends before the image data does "
                                      f"(an interrupted upload?) ({text})")
    return Rejection("corrupt", f"{fmt} image is damaged and cannot be decoded ({text})")


def _png_bit_depth(data: bytes) -> int | None:
    """Bit depth from the PNG IHDR chunk: Pillow opens 48/64-bit RGB(A) PNGs as 8-bit modes and would hide it."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) > 24:
        return data[24]
    return None


def _changes_needed(data: bytes, image: Image.Image, limits: Limits) -> list[str]:
    """What has to change, from the header alone (cheap), as short codes in the order they are applied."""
    fmt = image.format
    needed = []
    if getattr(image, "is_animated", False):
        needed.append("first_frame")
    if fmt in ("JPEG", "TIFF", "WEBP", "PNG") and image.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None):
        needed.append("exif_orientation")
    if image.mode in _SIXTEEN_BIT_MODES or _png_bit_depth(data) == 16:
        needed.append("to_8_bit")
    if image.mode in _NEEDS_RGB_MODES:
        needed.append("to_rgb")
    if fmt in CONVERTIBLE_FORMATS:
        needed.append("convert_format")
    if max(image.size) > limits.max_side:
        needed.append("downscale")
    if len(data) > limits.max_bytes:
        needed.append("shrink_bytes")
    return needed


def _ends_cleanly(data: bytes, fmt: str) -> bool:
    """The file ends with its format's end marker (JPEG EOI, PNG IEND chunk): it was not cut short.

    An upload that stopped half-way never has the marker. Files with bytes after the marker (phones append motion
    clips after a JPEG's EOI) and formats without one take the slow path, a decode.
    """
    if fmt == "JPEG":
        return data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if fmt == "PNG":
        return data.endswith(b"IEND\xaeB`\x82")
    return False


def _check_complete(data: bytes, fmt: str) -> Rejection | None:
    """Prove the file is whole: by its end marker when it has one (no decode: a 1 MB photo costs microseconds, and
    damage inside the stream is refused by the Prediction API, which the handler quarantines), else by decoding it
    once, JPEGs at 1/8 scale (the whole stream is still read)."""
    if _ends_cleanly(data, fmt):
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if fmt == "JPEG":
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except _DECODE_ERRORS as exc:
        return _decode_failure(fmt, exc)
    return None


def _convert(data: bytes, image: Image.Image, needed: list[str], limits: Limits) -> NormalisedImage | Rejection:
    fmt = image.format or "unknown"
    original_size = image.size
    changes: list[str] = []
    if "downscale" in needed and fmt == "JPEG":
        # Decode big JPEGs at the smallest DCT scale that is still at least the target: less memory and time.
        scale = limits.max_side / max(image.size)
        image.draft(image.mode, (int(image.width * scale) + 1, int(image.height * scale) + 1))
    if "first_frame" in needed:
        frames = getattr(image, "n_frames", 1)
        image.seek(0)
        changes.append(f"animated {fmt} with {frames} frames: first frame used")
    image.load()
    if "exif_orientation" in needed:
        orientation = image.getexif().get(_EXIF_ORIENTATION)
        image = ImageOps.exif_transpose(image)
        changes.append(f"rotated as EXIF orientation {orientation} says")
    if "to_8_bit" in needed:
        image = _to_8_bit(image)
        changes.append("16-bit samples reduced to 8-bit")
    if "to_rgb" in needed:
        changes.append(f"{image.mode} converted to RGB")
        image = image.convert("RGB")
    if "convert_format" in needed:
        changes.append(f"{fmt} converted")
    if max(image.size) > limits.max_side:
        before = image.size
        image.thumbnail((limits.max_side, limits.max_side), Image.Resampling.LANCZOS)
        changes.append(f"downscaled from {before[0]}x{before[1]} to {image.width}x{image.height} "
                       f"(longest side at most {limits.max_side} px)")
    if "shrink_bytes" in needed and not changes:
        changes.append(f"{len(data):,} bytes is above the {limits.max_bytes:,}-byte prediction limit")
    encoded = _encode_within(image, fmt, limits, changes)
    if encoded is None:
        return Rejection("too_large",
                         f"{fmt} image {original_size[0]}x{original_size[1]} ({len(data):,} bytes) cannot be brought "
                         f"under the {limits.max_bytes:,}-byte prediction limit without shrinking it below "
                         f"{limits.min_side_when_shrinking} px; shrink or recompress it before uploading")
    out, out_fmt = encoded
    with Image.open(io.BytesIO(out)) as check:
        width, height = check.size
    return NormalisedImage(data=out, format=out_fmt, width=width, height=height, original_format=fmt,
                           original_width=original_size[0], original_height=original_size[1],
                           original_bytes=len(data), changes=tuple(changes))


def _to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit grey (I;16*) maps 0..65535 onto 0..255; 32-bit int/float is stretched over its own range."""
    if image.mode.startswith("I;16"):
        return image.convert("I").point(lambda v: v * (1 / 257)).convert("L")
    if image.mode in ("I", "F"):
        low, high = image.getextrema()
        span = (high - low) or 1
        return image.point(lambda v: (v - low) * (255 / span)).convert("L")
    return image  # a 48/64-bit PNG Pillow already opened as 8-bit RGB(A): re-encoding writes 8 bits


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(
            buffer, "JPEG", quality=quality, optimize=False)
    else:
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
        image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _encode_within(image: Image.Image, source_fmt: str, limits: Limits,
                   changes: list[str]) -> tuple[bytes, str] | None:
    """Encode under the byte limit: the natural format first, then JPEG at falling quality, then smaller sizes."""
    natural = "JPEG" if source_fmt == "JPEG" or (source_fmt in CONVERTIBLE_FORMATS and not _has_alpha(image)) \
        else "PNG"
    out = _encode(image, natural, limits.jpeg_qualities[0])
    if len(out) <= limits.max_bytes:
        return out, natural
    flat = image.convert("RGB") if _has_alpha(image) or image.mode not in ("L", "RGB") else image
    for quality in limits.jpeg_qualities:
        out = _encode(flat, "JPEG", quality)
        if len(out) <= limits.max_bytes:
            changes.append(f"re-encoded as JPEG quality {quality} to fit {limits.max_bytes:,} bytes")
            return out, "JPEG"
    current = flat
    while min(current.size) * 3 // 4 >= limits.min_side_when_shrinking:
        current = current.resize((current.width * 3 // 4, current.height * 3 // 4), Image.Resampling.LANCZOS)
        out = _encode(current, "JPEG", limits.jpeg_qualities[-1])
        if len(out) <= limits.max_bytes:
            changes.append(f"shrunk to {current.width}x{current.height}, JPEG quality {limits.jpeg_qualities[-1]}, "
                           f"to fit {limits.max_bytes:,} bytes")
            return out, "JPEG"
    return None

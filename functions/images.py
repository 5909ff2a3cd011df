"""Validate and normalise an incoming image before it is sent to the Prediction API: bytes in, a verdict out.

Why a pure function of bytes: every bad file an operator meets (empty upload, interrupted upload, a text file named
`.jpg`, a TIFF from a scanner, a 16-bit medical PNG, a CMYK print JPEG, an animated GIF, a phone photo rotated by EXIF,
a 100 MP panorama, a decompression bomb) must get the same answer in the Function, the HTTP API and the tests, with
no service involved. What can be made acceptable to Custom Vision (JPEG/PNG/BMP/GIF, at most 4 MB, longest side at
most 10,240 px) is converted and the reason recorded; what cannot is a :class:`Rejection` with a code and a message,
which the caller turns into a quarantine record. The original bytes are never modified: the copy that is routed is
the original; only the bytes sent for prediction are normalised.

Fast path: an image that needs no change is only checked to be complete (its end marker and checksums, or a decode
when it has neither) and its original bytes are sent as they are.

Memory: Pillow decodes to full-size buffers outside Python's allocator, so a pixel cap alone does not cap memory (a
488 KB RGBA PNG of 10950 x 10950 took 1.8 GB through the old path). Each image's peak is estimated from its header
before anything is decoded (:func:`estimate_memory`), the work is planned to fit ``Limits.memory_budget_bytes``
(reduced JPEG decoding, an earlier and smaller downscale), and what cannot fit is refused before decoding. A
process-wide gate holds concurrent decodes to ``MEMORY_POOL_BYTES`` together, whatever concurrency the host allows.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import simplejpeg
from PIL import Image, ImageStat, UnidentifiedImageError

from cvops import limits
from functions import completeness, decode_cost, png_strips
from functions.completeness import Rejection

__all__ = [
    "ACCEPTED_FORMATS",
    "APP_FOOTPRINT_BYTES",
    "CONCURRENT_IMAGES",
    "CONVERTIBLE_FORMATS",
    "EXIF_TEXT_CHARS",
    "HOST_ALLOWANCE_BYTES",
    "INSTANCE_MEMORY_BYTES",
    "MEMORY_BUDGET_BYTES",
    "MEMORY_POOL_BYTES",
    "MODEL_DECODE_GAP",
    "STAT_PIXELS",
    "Limits",
    "MemoryEstimate",
    "NormalisedImage",
    "PictureRule",
    "Rejection",
    "decode_for_model",
    "estimate_memory",
    "exif_camera",
    "input_too_large",
    "luminance",
    "memory_plan",
    "model_decode_size",
    "normalise",
    "picture_rule",
    "reserved",
]

MiB = 1024 * 1024
INSTANCE_MEMORY_BYTES = 2048 * MiB
"""Flex Consumption's default instance memory; every concurrent invocation on the instance shares it."""
CONCURRENT_IMAGES = 8
"""host.json ``extensions.blobs.maxDegreeOfParallelism``: images one instance may be validating at once."""
HOST_ALLOWANCE_BYTES = 256 * MiB
"""The Functions host (.NET) and the Python worker's own runtime (gRPC, the invocation's copy of the blob's bytes
in flight): not measurable on this machine (no ``func`` here), so a round allowance."""
APP_FOOTPRINT_BYTES = 192 * MiB
"""This app in the worker: ``import function_app`` with the Azure SDKs and Pillow measured 67 MB of RSS (VmHWM in a
fresh process, Python 3.11, 2026-11-30); the rest covers its clients, connection pools, thread stacks and logs."""
MEMORY_POOL_BYTES = INSTANCE_MEMORY_BYTES - HOST_ALLOWANCE_BYTES - APP_FOOTPRINT_BYTES
"""What all images being validated at once may use together: 2,048 - 256 - 192 = 1,600 MiB."""
MEMORY_BUDGET_BYTES = MEMORY_POOL_BYTES // CONCURRENT_IMAGES
"""Peak memory one image may take from the moment its bytes arrive until its prediction bytes are encoded:
(2,048 MiB instance - 256 MiB host allowance - 192 MiB app footprint) / 8 concurrent images = 200 MiB.

It counts the input bytes (twice: the trigger's copy and the one in flight), every buffer the path allocates at
once (decode, mode conversion, resize, re-encode) and fixed encoder overhead; see :func:`estimate_memory` for the
bytes per pixel by mode. tests/functions/test_fn_memory_budget.py measures the real peak (RSS) of the worst images
against it, one at a time and eight at once.
"""

ACCEPTED_FORMATS = limits.ACCEPTED_FORMATS
"""What the Prediction API accepts as is (:data:`cvops.limits.ACCEPTED_FORMATS`)."""
CONVERTIBLE_FORMATS = frozenset({"TIFF", "WEBP"})
"""Formats cameras and scanners produce that Pillow decodes safely: converted to PNG or JPEG before prediction."""

_EXIF_ORIENTATION = 0x0112
_JPEG_FAMILY = frozenset({"JPEG", "MPO"})
"""Pillow opens a phone's MPO (a JPEG followed by more JPEGs) as "MPO": its first picture is checked as a JPEG."""
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_NEEDS_RGB_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV", "RGBX"})
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, IndexError, TypeError, Image.DecompressionBombError)

_STORAGE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
"""Bytes per pixel of Pillow's in-memory image by mode; every other mode (LA, PA, RGB, RGBA, CMYK, YCbCr, I, F) is
stored as 4 bytes per pixel, RGB included (Pillow pads it to RGBX)."""
_WORK_BYTES_PER_PIXEL = 8
"""A conversion step (rotate, 16-to-8 bit, to RGB, the encoder's mode change) holds its input and output at once:
at most 4 + 4 bytes per working pixel; earlier images are released before the next step."""
_RESIZE_BYTES_PER_PIXEL = 28
"""Downscaling to ``p`` working pixels: a box ``reduce`` to under 4p pixels (16 bytes each per working pixel), then
Lanczos to the exact size (horizontal pass under 2p, 8 bytes; output p, 4 bytes)."""
_ALPHA_RESIZE_BYTES_PER_PIXEL = 48
"""The same with transparency: Pillow's ``reduce`` and ``resize`` premultiply alpha into a converted copy of their
input (RGBa) and convert back, so each pass holds one more 4-byte image; a palette image with transparency becomes
RGBA before it is filtered. The first pass's copy is of the decoded image: counted apart, 4 bytes a decoded pixel."""
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "P"})
_FIXED_OVERHEAD_BYTES = 16 * MiB
"""libjpeg/zlib state, row buffers, Python objects of one invocation."""
_INPUT_COPIES = 2
"""The trigger's ``bytes`` and the worker's copy in flight are alive while the image is validated."""
_MIN_WORK_SIDE = limits.UPSCALED_BELOW_SIDE
"""Custom Vision upscales anything smaller; shrinking below this to fit memory would only lose the picture."""

# Our own pixel limit (Limits.max_pixels) is what decides; Pillow's global warning below it would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class Limits:
    """What the Prediction API accepts and what this process is willing to decode.

    The first three default to Custom Vision's limits (:mod:`cvops.limits`); the rest are this app's own choices.

    ``max_pixels`` refuses absurd headers cheaply (a 100 KB PNG can declare 50,000 x 50,000 pixels); it does not
    bound memory by itself: ``memory_budget_bytes`` does (see :data:`MEMORY_BUDGET_BYTES` for its arithmetic), by
    planning each image's decode and conversions from its header and refusing what cannot fit.
    ``max_input_bytes`` refuses oversize uploads before they are parsed: their bytes alone would eat the budget
    (counted twice, see :func:`estimate_memory`); 32 MiB is above any camera JPEG and far above the 4 MB that
    prediction accepts.
    """

    max_bytes: int = limits.MAX_PREDICTION_BYTES
    max_side: int = limits.MAX_SIDE
    max_aspect_ratio: float = limits.MAX_ASPECT_RATIO
    max_pixels: int = 120_000_000
    jpeg_qualities: tuple[int, ...] = (90, 80, 70)
    min_side_when_shrinking: int = 512
    max_input_bytes: int = 32 * MiB
    memory_budget_bytes: int = MEMORY_BUDGET_BYTES
    cost: decode_cost.CostLimits = decode_cost.COST_LIMITS
    """What decoding may cost in CPU (scans, frames, chunks...): :class:`functions.decode_cost.CostLimits`."""


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
    pending_check: Callable[[], Rejection | None] | None = field(default=None, compare=False, repr=False)
    """With ``normalise(..., defer_scan_check=True)``: the JPEG scan check still to run (None: nothing left). It returns
    the rejection the inline check would have; the caller must run it and honour it before acting on the image."""
    decoded: Image.Image | None = field(default=None, compare=False, repr=False)
    """With ``normalise(..., model_side=S)``: the picture a model of input side S resizes from, made within the
    image's memory plan whatever its format (a JPEG's from the one decode that also proved it whole, a converted
    image's from its conversion; None without ``model_side``: the caller decodes ``data`` itself)."""
    decode_bytes: int | None = field(default=None, compare=False)
    """The planned peak memory of decoding ``data`` when it is the original (None after a conversion): what a second
    decode of it (an in-process model's) reserves, without parsing the file again."""
    statistics: dict[str, float | str] = field(default_factory=dict, compare=False, repr=False)
    """Luminance of the pixels validation decoded anyway (:func:`luminance`): filled by :func:`normalise`, or by
    ``pending_check`` when the scan check is deferred (its decode is the one measured). Empty when nothing was decoded
    (a PNG proved whole by its checksums alone, without an in-process model)."""
    camera: dict[str, str] | None = field(default=None, compare=False)
    """EXIF ``make`` and ``model`` from the header, where present (:func:`exif_camera`): escaped and capped."""

    @property
    def unchanged(self) -> bool:
        return not self.changes

    def summary(self) -> dict:
        """Plain data for a result record. The luminance fields are None when no pixels were decoded (see
        ``statistics``); ``exif`` is None when the header names no camera."""
        return {
            "format": self.format, "width": self.width, "height": self.height, "bytes": len(self.data),
            "original_format": self.original_format, "original_width": self.original_width,
            "original_height": self.original_height, "original_bytes": self.original_bytes,
            "changes": list(self.changes),
            "luminance_mean": self.statistics.get("luminance_mean"),
            "luminance_std": self.statistics.get("luminance_std"),
            "luminance_from": self.statistics.get("luminance_from"),
            "exif": dict(self.camera) if self.camera else None,
        }


@dataclass(frozen=True)
class MemoryEstimate:
    """One image's planned peak memory and the plan that keeps it there (all from the header, nothing decoded).

    ``decode_scale``: a JPEG is decoded at 1/decode_scale (1, 2, 4 or 8); other formats at 1. ``work_pixels``: the
    image's pixels after any downscale. ``memory_shrink``: the plan shrinks below what ``max_side`` alone asks, to
    fit the budget. ``fits`` is False when no plan fits: the image is refused before it is decoded.
    """

    peak_bytes: int
    decode_scale: int
    work_pixels: int
    memory_shrink: bool
    fits: bool
    detail: str


def input_too_large(size: int, limits: Limits = Limits()) -> Rejection | None:  # noqa: B008 - frozen dataclass
    """Refuse a blob by its size alone, before its bytes are read (for callers that know the size first)."""
    if size <= limits.max_input_bytes:
        return None
    return Rejection("too_large",
                     f"the blob is {size:,} bytes, above the {limits.max_input_bytes:,} bytes this function reads "
                     f"(an image that large cannot be validated within {limits.memory_budget_bytes // MiB} MiB); "
                     "downscale or recompress it before uploading")


def _storage_bytes(mode: str) -> int:
    return _STORAGE_BYTES.get(mode, 4)


def _decoder_extra(fmt: str, mode: str, pixels: int) -> int:
    """Buffers a decoder (or our first conversion at full size) holds beside the decoded image, per format.

    WebP: libwebp's animation decoder keeps two RGBA canvases. TIFF: libtiff may read the whole image as one strip,
    or as an RGBA raster (4 bytes a pixel). BMP: Pillow's RLE decoder builds the raw pixels first. GIF: a copy of
    the frame for disposal. ``1`` and 16-bit modes are converted at full size before any downscale.
    """
    extra = {"WEBP": 8 * pixels, "TIFF": 4 * pixels + _storage_bytes(mode) * pixels, "BMP": 4 * pixels,
             "GIF": pixels}.get(fmt, 0)
    if mode == "1" or mode.startswith("I;16"):
        extra += _storage_bytes(mode) * pixels
    return extra


def estimate_memory(fmt: str, mode: str, size: tuple[int, int], data_len: int, limits: Limits = Limits(),  # noqa: B008
                    *, convert: bool, jpeg_coefficient_bytes: int = 0, checked_by_decode: bool = True,
                    model_side: int | PictureRule | None = None, model_by_strips: bool = False) -> MemoryEstimate:
    """Peak memory of validating one image, and the decode scale and working size that keep it under
    ``limits.memory_budget_bytes``.

    peak = 2 x input bytes (the trigger's copy and ours)
         + decoded pixels x bytes per pixel of the mode (1: 1-bit, L, P; 2: 16-bit; 4: every other mode, RGB too)
         + the decoder's own buffers (:func:`_decoder_extra`; a progressive or multi-scan JPEG keeps every DCT
           coefficient, 2 bytes per sample, whatever the output scale)
         + working pixels x 8 (one conversion's input and output) or x 28 when downscaling (box reduce to under 4x
           the target, then Lanczos); with transparency x 48 and a premultiplied copy of the decoded image (4 bytes
           a pixel), which Pillow makes for every filter pass
         + 3 x the prediction byte limit (encoder output) + 16 MiB fixed.

    ``convert`` False: the image is only checked: a JPEG by small decodes (two at 1/4 scale at most), a PNG by its
    checksums (``checked_by_decode`` False: no decode), other formats by one full decode. JPEGs try scales 1, 1/2,
    1/4, 1/8 (the first that is still at least ``max_side`` when downscaling, then smaller ones); if none fits, or
    for other formats, the working image is shrunk further to fit, down to 256 px on its short side.

    ``model_side``: an in-process model of that input side gets its picture from the same validation
    (:func:`normalise` with ``model_side``). Its cost is added (:func:`_model_picture_bytes`), and an image that is
    otherwise only checked by its checksums (a PNG) is counted as decoded whole: the model needs its pixels; unless
    ``model_by_strips`` (a PNG :mod:`functions.png_strips` decodes a strip at a time): then one strip is.
    """
    width, height = size
    storage = _storage_bytes(mode)
    fixed = _INPUT_COPIES * data_len + _FIXED_OVERHEAD_BYTES
    label = f"{mode} {fmt} {width}x{height}"
    model = 0
    if model_side is not None:
        model = _model_picture_bytes(fmt, mode, size, model_side, from_decode=convert or fmt != "JPEG",
                                     by_strips=model_by_strips and not convert)
        label += f" (with the picture for a model of input side {picture_rule(model_side).side})"
    if not convert:
        if fmt == "JPEG":
            peak = max(_jpeg_check_bytes(size, storage, data_len, fixed, jpeg_coefficient_bytes),
                       fixed + jpeg_coefficient_bytes + model)
        elif model_side is not None and model_by_strips:
            peak = fixed + model
        elif checked_by_decode or model_side is not None:
            peak = fixed + width * height * storage + _decoder_extra(fmt, mode, width * height) + model
        else:
            peak = fixed
        return MemoryEstimate(peak, 8 if fmt == "JPEG" else 1, width * height, False,
                              peak <= limits.memory_budget_bytes, label)
    fixed += 3 * limits.max_bytes + model
    side_limit = limits.max_side
    scales = (1, 2, 4, 8) if fmt == "JPEG" else (1,)
    if fmt == "JPEG" and max(size) > side_limit:  # the smallest decode still at least max_side, then smaller ones
        first = max(s for s in scales if math.ceil(max(size) / s) >= side_limit or s == 1)
        scales = tuple(s for s in scales if s >= first)
    plan = None
    for scale in scales:
        dw, dh = math.ceil(width / scale), math.ceil(height / scale)
        decoded = dw * dh
        decode_bytes = decoded * storage + _decoder_extra(fmt, mode, decoded) + jpeg_coefficient_bytes
        factor = min(1.0, side_limit / max(dw, dh))
        work = max(1, round(dw * factor)) * max(1, round(dh * factor))
        per_pixel = _resize_bytes(mode) if work < decoded else _WORK_BYTES_PER_PIXEL
        peak = fixed + decode_bytes + per_pixel * work + (_alpha_copy(mode, decoded) if work < decoded else 0)
        plan = (scale, dw, dh, decode_bytes, work)
        if fmt == "JPEG":
            peak = max(peak, _jpeg_check_bytes(size, storage, data_len, fixed, jpeg_coefficient_bytes))
        if peak <= limits.memory_budget_bytes:
            return MemoryEstimate(peak, scale, work, False, True, label)
    assert plan is not None
    scale, dw, dh, decode_bytes, work = plan
    decode_bytes += _alpha_copy(mode, dw * dh)
    room = limits.memory_budget_bytes - fixed - decode_bytes
    shrunk = min(work, max(0, room) // _resize_bytes(mode))
    short_side = min(dw, dh) * math.sqrt(shrunk / (dw * dh))
    peak = fixed + decode_bytes + _resize_bytes(mode) * shrunk
    if fmt == "JPEG":
        peak = max(peak, _jpeg_check_bytes(size, storage, data_len, fixed, jpeg_coefficient_bytes))
    return MemoryEstimate(peak, scale, shrunk, True,
                          short_side >= _MIN_WORK_SIDE and peak <= limits.memory_budget_bytes, label)


_STRIP_PIXELS = 1 << 20
"""Pixels per strip when the model's picture is made from a decoded image (:func:`_model_picture`)."""


def _model_picture_bytes(fmt: str, mode: str, size: tuple[int, int], side: int | PictureRule, *, from_decode: bool,
                         by_strips: bool = False) -> int:
    """What making an in-process model's picture adds, beside the decoded image the plan already counts.

    ``from_decode`` (every format but an unchanged JPEG): :func:`_model_picture` converts and shrinks the decoded
    image one strip at a time: a strip (cropped, then RGB: 4 + 4 bytes a pixel), the image narrowed to the target
    width (4 bytes a pixel), the target picture (``side`` x ``side``, or for a rule that keeps the aspect the shorter
    side at ``side``). An unchanged JPEG is decoded again, reduced by libjpeg (:func:`decode_for_model`): at most
    Pillow's 1/2, 1/4 or 1/8 scale that keeps both sides twice ``side``, 4 bytes a pixel and its RGB copy, then sized
    by the runner. ``by_strips``: a PNG decoded strip by strip from its file (:mod:`functions.png_strips`): only a
    strip is ever decoded (``STRIP_BYTES_PER_PIXEL``). All: the model's input tensor (float32, three copies while it
    is laid out)."""
    rule = picture_rule(side)
    width, height = size
    target_width, target_height = rule.target(width, height)
    picture = 4 * target_width * target_height
    tensor = 3 * 4 * rule.side * rule.side * 3 + 4 * rule.side * rule.side
    if not from_decode:
        at_least = math.ceil(rule.side * MODEL_DECODE_GAP)
        scale = max((s for s in (1, 2, 4, 8) if min(width, height) // s >= at_least), default=1)
        return 8 * math.ceil(width / scale) * math.ceil(height / scale) + picture + tensor
    rows = min(height, max(1, _STRIP_PIXELS // max(1, width)))
    per_pixel = png_strips.STRIP_BYTES_PER_PIXEL if by_strips else _storage_bytes(mode) + 8
    return per_pixel * rows * width + 4 * target_width * rows + 4 * target_width * height + picture + tensor


def _jpeg_check_bytes(size: tuple[int, int], storage: int, data_len: int, fixed: int, coefficients: int) -> int:
    """The scan check (:func:`_jpeg_scan_complete`), before any conversion: two 1/4-scale decodes alive at once and
    a padded copy of the input, beside libjpeg's coefficient buffers."""
    quarter = math.ceil(size[0] / 4) * math.ceil(size[1] / 4)
    return fixed + data_len + coefficients + 2 * quarter * storage


def _resize_bytes(mode: str) -> int:
    return _ALPHA_RESIZE_BYTES_PER_PIXEL if mode in _ALPHA_MODES else _RESIZE_BYTES_PER_PIXEL


def _alpha_copy(mode: str, decoded: int) -> int:
    """The premultiplied copy of the decoded image that the first ``reduce`` makes for RGBA, LA and PA."""
    return 4 * decoded if mode in ("RGBA", "LA", "PA") else 0


class _MemoryGate:
    """Holds the images being validated at once in this process to ``capacity`` bytes of estimated peak together.

    host.json allows 8 blob invocations, and the queue trigger more (``batchSize`` + ``newBatchThreshold``), all in
    one worker process: the per-image budget alone would not bound the sum. An image whose estimate does not fit
    waits until enough earlier ones finish (seconds); one image alone always passes (its estimate is within the
    per-image budget, itself within the pool).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, amount: int) -> Iterator[None]:
        amount = min(amount, self.capacity)
        with self._changed:
            self._changed.wait_for(lambda: self.in_use + amount <= self.capacity)
            self.in_use += amount
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= amount
                self._changed.notify_all()


_GATE = _MemoryGate(MEMORY_POOL_BYTES)


STAT_PIXELS = 1 << 18
"""Pixels measured at most for an image's luminance: a larger picture is sampled first (every k-th pixel each way,
nearest). A 1/8-scale decode of a 12 MP photo (500 x 375) is measured whole."""


def luminance(picture: Image.Image, source: str) -> dict[str, float | str]:
    """Mean and standard deviation of a picture's luminance (BT.601 luma, 0-255: Pillow's ``convert("L")``, and the Y
    that libjpeg decodes a JPEG to in grey), from its 256-bin histogram: what a monitor compares between periods.

    Only ever of a picture validation decoded anyway (``source`` says which, as ``luminance_from``): ``scan_check``,
    a JPEG's 1/8-scale decode (each pixel an 8 x 8 block's mean: the mean is the image's, the spread leaves out
    detail finer than a block); ``model_picture``, the picture an in-process model is fed; ``converted``, the
    picture sent for prediction after a conversion; ``decoded``, a GIF's or BMP's whole decode. Compare like with
    like: one deployment measures every JPEG the same way. Empty when the picture has no luminance Pillow can give.
    """
    try:
        width, height = picture.size
        step = math.ceil(math.sqrt(width * height / STAT_PIXELS)) if width * height > STAT_PIXELS else 1
        sample = picture if step == 1 else picture.resize((max(1, width // step), max(1, height // step)),
                                                          Image.Resampling.NEAREST)
        grey = sample if sample.mode == "L" else sample.convert("L")
        stat = ImageStat.Stat(grey.histogram())
        mean, std = stat.mean[0], stat.stddev[0]
    except (ValueError, OSError, ZeroDivisionError):
        return {}
    return {"luminance_mean": round(mean, 2), "luminance_std": round(std, 2), "luminance_from": source}


@dataclass(frozen=True)
class _Inspection:
    """What the header and the cheap structural checks said, before any pixel is decoded."""

    image: Image.Image
    layout: _JpegLayout | None
    needed: list[str]
    plan: MemoryEstimate


def normalise(data: bytes, limits: Limits = Limits(), *,  # noqa: B008 - frozen dataclass
              defer_scan_check: bool = False, model_side: int | PictureRule | None = None) -> NormalisedImage | Rejection:
    """Check ``data`` is one complete, supported image within ``limits``; fix what can be fixed.

    Rejection codes: ``empty``, ``not_an_image``, ``unsupported_format``, ``truncated``, ``corrupt``,
    ``decompression_bomb`` (more pixels, or more memory to decode, than this function allows),
    ``too_costly_to_decode`` (more CPU to decode than this function allows: :mod:`functions.decode_cost`),
    ``bad_aspect_ratio``, ``too_large`` (over the input or the prediction byte limit).

    ``defer_scan_check``: a JPEG sent as it is gets its scan check (a 1/8-scale decode of the whole stream, about 10 ms
    a megabyte, the bulk of this function's time) returned as ``pending_check`` instead of run here, so the caller can
    run it while the prediction call waits on the network. Converted images are checked here as before.

    ``model_side``: an in-process model of that input side classifies the image next. A YCbCr or grey JPEG sent as it
    is is then decoded once, strictly (as :func:`decode_for_model` decodes, with libjpeg's warnings as errors), and
    that picture is returned as ``decoded``: one decode proves the file whole and feeds the model, instead of the scan
    check's decode and then the model's. Data that stops early is ``corrupt`` wherever the cut is (stricter than the
    scan check); any other warning leaves the verdict to the scan check, as for everyone else. Every other image gets
    its model picture here too (``decoded``, planned in its memory estimate; a decode failure is a rejection here,
    never an error in the model runner): an image sent unchanged is decoded whole (that decode also proves it
    complete) and brought to S x S strip by strip; a converted one from its converted picture before encoding.
    """
    inspected = _inspect(data, limits, model_side)
    if isinstance(inspected, Rejection):
        return inspected
    image, layout, needed, plan = inspected.image, inspected.layout, inspected.needed, inspected.plan
    fmt = image.format or "unknown"
    width, height = image.size
    if not plan.fits:
        image.close()
        return Rejection("decompression_bomb",
                         f"{plan.detail} would need about {plan.peak_bytes // MiB:,} MiB to decode and convert, above "
                         f"the {limits.memory_budget_bytes // MiB:,} MiB one image may use here (a decompression "
                         "bomb, or an image far larger than prediction needs); downscale it before uploading")
    with _GATE.reserve(plan.peak_bytes):
        try:
            # After the plan: a bomb is refused by its header before its data is inflated (that costs CPU). A PNG
            # the model path decodes by strips has its image data inflated once, by that decode, which says the same.
            by_strips = fmt == "PNG" and model_side is not None and not needed and png_strips.applicable(data)
            problem = completeness.png_complete(data, image_data=not by_strips) if fmt == "PNG" else None
            if problem:
                return problem
            camera = exif_camera(image)
            statistics: dict[str, float | str] = {}
            deferred = defer_scan_check and layout is not None and not needed
            decoded, warned = None, False
            if layout is not None and not needed and model_side is not None and _decodes_strictly(image):
                decoded = _strict_model_decode(data, layout, model_side)
                if isinstance(decoded, Rejection):
                    return decoded
                warned = decoded is None  # libjpeg has spoken: only the picture test is left to decide
            if layout is not None and not deferred and decoded is None:
                problem = (_picture_test(data, layout, statistics) if warned
                           else _jpeg_scan_complete(data, layout, statistics))
                if problem:
                    return problem
            if not needed:
                if model_side is not None and decoded is None:  # the model's picture, within this plan
                    try:  # a whole decode proves the file whole
                        decoded = _decode_model_picture(data, fmt, model_side)
                    except png_strips.ImageDataError as exc:
                        problem = completeness.png_image_data(data, exc.produced, exc.ended, exc.zlib_error,
                                                                  bad_filter=exc.bad_filter)
                        if problem is None:
                            raise
                        return problem
                else:
                    problem = _check_complete(data, fmt, statistics)
                    if problem:
                        return problem
                if decoded is not None and not statistics:
                    statistics.update(luminance(decoded, "model_picture"))
                pending = (_deferred_scan_check(data, layout, plan.peak_bytes, statistics) if deferred and layout
                           else None)
                return NormalisedImage(data=data, format=fmt, width=width, height=height, original_format=fmt,
                                       original_width=width, original_height=height, original_bytes=len(data),
                                       pending_check=pending, decoded=decoded, decode_bytes=plan.peak_bytes,
                                       statistics=statistics, camera=camera)
            return _convert(data, image, needed, plan, limits, model_side, camera)
        except _DECODE_ERRORS as exc:
            return _decode_failure(fmt, exc)
        finally:
            image.close()


def reserved(amount: int) -> contextlib.AbstractContextManager[None]:
    """Hold ``amount`` bytes of this process's image memory pool while decoding an image :func:`normalise` accepted
    (an in-process model decodes it again: that decode must count against the same pool)."""
    return _GATE.reserve(amount)


MODEL_DECODE_GAP = 2.0
"""How much larger than a model's input side a JPEG is decoded at least (Pillow's ``thumbnail`` default
``reducing_gap``): libjpeg's scaled IDCT (M/8) then does most of the reduction almost for free, and the bicubic resize
that follows still shrinks by 2x or more, which keeps the result within a few of 255 levels of a full decode (a
2,048 x 1,536 photo decoded at 3/8: mean 0.25, at most 3). A full decode and resize of a 3-megapixel photo costs
about 26 ms of CPU; this about 13."""


@dataclass(frozen=True)
class PictureRule:
    """How an in-process model's runner sizes the picture it is fed, so that validation can make that very picture
    (strip by strip, inside the memory plan) instead of a full-size decode for the runner to shrink.

    Custom Vision's export (Microsoft's sample): the whole image to ``side`` x ``side``, bicubic. Azure ML AutoML's
    (``keep_aspect``; its "With PyTorch" validation transform, torchvision's ``Resize(side)``): the shorter side to
    ``side``, the longer in proportion (truncated), bilinear; the runner then crops its centre. A JPEG is decoded at
    libjpeg's reduced scale by either rule (:func:`model_decode_size`) and sized by the runner itself."""

    side: int
    keep_aspect: bool = False

    def target(self, width: int, height: int) -> tuple[int, int]:
        if not self.keep_aspect:
            return self.side, self.side
        if width <= height:
            return self.side, int(self.side * height / width)
        return int(self.side * width / height), self.side

    @property
    def resample(self) -> Image.Resampling:
        return Image.Resampling.BILINEAR if self.keep_aspect else Image.Resampling.BICUBIC


def picture_rule(model_side: int | PictureRule) -> PictureRule:
    """``model_side`` as a rule: a bare side is Custom Vision's (the whole image to side x side)."""
    return model_side if isinstance(model_side, PictureRule) else PictureRule(int(model_side))


def model_decode_size(width: int, height: int, side: int) -> tuple[int, int]:
    """The size libjpeg-turbo decodes a YCbCr or grey JPEG at for a model of input ``side``: the smallest of its
    scales M/8 (M = 1..8) that keeps both sides at least ``MODEL_DECODE_GAP`` x ``side``; the whole image when none
    does. (libjpeg rounds a scaled side up.)"""
    at_least = math.ceil(side * MODEL_DECODE_GAP)
    for eighths in range(1, 9):
        size = (-(-width * eighths // 8), -(-height * eighths // 8))
        if min(size) >= at_least:
            return size
    return width, height


def decode_for_model(data: bytes, side: int | PictureRule) -> Image.Image:
    """The picture an in-process model of input ``side`` resizes from: a YCbCr or grey JPEG decoded by libjpeg-turbo
    (through simplejpeg) at :func:`model_decode_size`, any other JPEG at Pillow's nearest 1/2, 1/4 or 1/8 scale that is
    as large, anything else decoded whole and brought to the runner's own size (:class:`PictureRule`) strip by strip
    (:func:`_model_picture`: the same pixels as a whole-image resize, without its full-size copies).

    Why a rule of its own: the app's validation and the model runner decode once for both (:func:`normalise` with
    ``model_side``), and the local service's compact domains decode by the same rule, so an exported model agrees with
    the service exactly. The caller holds the memory reservation (:func:`reserved`); the estimate of a full decode
    covers a reduced one (:func:`memory_plan` with ``model_side``).
    """
    image = Image.open(io.BytesIO(data))
    if image.format == "PNG" and png_strips.applicable(data):
        image.close()
        return _png_model_picture(data, side)
    if image.format != "JPEG":
        with image:
            image.load()
            return _model_picture(image, side)
    if image.format == "JPEG":
        if _decodes_strictly(image):
            try:
                decoded = _simplejpeg_decode(data, side, strict=False)
            except ValueError:  # a layout TurboJPEG refuses and libjpeg's own API reads: Pillow's picture, then
                pass
            else:
                image.close()
                return decoded
        at_least = math.ceil(picture_rule(side).side * MODEL_DECODE_GAP)
        image.draft(image.mode, (at_least, at_least))
    image.load()
    return image


def _decode_model_picture(data: bytes, fmt: str, side: int | PictureRule) -> Image.Image:
    """The model's picture of a file :func:`normalise` sends unchanged: a JPEG as :func:`decode_for_model` decodes it
    (reduced by libjpeg), anything else decoded whole and made small strip by strip (:func:`_model_picture`)."""
    if fmt in _JPEG_FAMILY:
        return decode_for_model(data, side)
    if fmt == "PNG" and png_strips.applicable(data):
        return _png_model_picture(data, side)
    with Image.open(io.BytesIO(data), formats=[fmt]) as image:
        image.load()
        return _model_picture(image, side)


def _model_picture(image: Image.Image, side: int | PictureRule) -> Image.Image:
    """``image`` as RGB at the size the model's runner makes (:class:`PictureRule`: ``side`` x ``side`` bicubic for
    Custom Vision's, the shorter side to ``side`` bilinear for AutoML's), made one strip at a time so that no
    full-size copy of a large image is ever held beside it.

    Pillow's resize is two passes, each rounded to 8 bits: rows first (each row on its own), then columns. So
    converting and narrowing each strip of rows to the target width, then resizing the narrow image to the target
    height, gives exactly the pixels of ``image.convert("RGB").resize(target, filter)``
    (tests/functions/test_fn_containers.py compares them), without its two full-size buffers (the RGB copy, and the
    premultiplied copy Pillow makes of an image with alpha): 811 MiB for a 10240 x 10240 RGBA PNG.
    """
    rule = picture_rule(side)
    width, height = image.size
    rows = max(1, _STRIP_PIXELS // width)
    return _narrowed((image.crop((0, top, width, min(height, top + rows))) for top in range(0, height, rows)),
                     height, rule.target(width, height), rule.resample)


def _png_model_picture(data: bytes, side: int | PictureRule) -> Image.Image:
    """:func:`_model_picture` of a PNG never decoded whole: its strips straight from the file
    (:mod:`functions.png_strips`), so memory is one strip's, whatever the image's size."""
    rule = picture_rule(side)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return _narrowed(png_strips.strips(data, max(1, _STRIP_PIXELS // width)), height, rule.target(width, height),
                     rule.resample)


def _narrowed(strips: Iterator[Image.Image], height: int, target: tuple[int, int],
              resample: Image.Resampling) -> Image.Image:
    """Strips of rows, top to bottom, each made RGB and narrowed to the target width, then the whole to its height."""
    narrow = Image.new("RGB", (target[0], height))
    top = 0
    for strip in strips:
        with strip:
            rgb = strip if strip.mode == "RGB" else strip.convert("RGB")
            narrow.paste(rgb.resize((target[0], rgb.height), resample), (0, top))
            top += rgb.height
            rgb.close()
    return _replace(narrow, narrow.resize(target, resample))


def _decodes_strictly(image: Image.Image) -> bool:
    """Whether simplejpeg (libjpeg-turbo's TurboJPEG) can decode this JPEG to RGB: YCbCr and grey, not CMYK/YCCK."""
    return image.format == "JPEG" and image.mode in ("RGB", "L")


def _simplejpeg_decode(data: bytes, side: int | PictureRule, *, strict: bool) -> Image.Image:
    # simplejpeg picks the smallest M/8 scale with both sides this large
    at_least = math.ceil(picture_rule(side).side * MODEL_DECODE_GAP)
    pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=at_least, min_height=at_least, strict=strict)
    return Image.fromarray(pixels, "RGB")


_PREMATURE_END = "premature end of data segment"  # libjpeg's JWRN_HIT_MARKER: a marker where scan data should be
_EXTRANEOUS_BEFORE_END = "extraneous bytes before marker 0xd9"
"""libjpeg's JWRN_EXTRANEOUS_DATA when the marker it finally found is the end of the image: it had read every scan's
data to the last block before it warned (a cut would have warned "premature end" first, and a strict decode stops at
its first warning), so the file is whole and the bytes were padding (some encoders write it)."""


def _strict_model_decode(data: bytes, layout: _JpegLayout, side: int | PictureRule) -> Image.Image | Rejection | None:
    """The model's picture when libjpeg decodes the whole file without a warning, or with none before the bytes it
    skips in front of the end marker (:func:`_strict_input` drops those in the header); a rejection when it met a
    marker where scan data should be (a cut file with an end marker appended: caught wherever the cut is, inside a
    progressive file's last scan and the last block's AC data too, which the scan check lets pass); None for any other
    warning (a stray byte between scans, an odd code), when the caller's scan check decides as for everyone else."""
    strict = _strict_input(data, layout)
    try:
        return _simplejpeg_decode(strict, side, strict=True)
    except ValueError as exc:
        if _PREMATURE_END in str(exc):
            return _premature_end(exc)
        if _EXTRANEOUS_BEFORE_END in str(exc):  # every block was read first: whole
            return _simplejpeg_decode(strict, side, strict=False)
        return None


def _deferred_scan_check(data: bytes, layout: _JpegLayout, reserve: int,
                         statistics: dict[str, float | str]) -> Callable[[], Rejection | None]:
    """The scan check of :func:`normalise`, to run later: under the same memory gate, with the same answers (and the
    luminance of its decode put in ``statistics``, the image's own, when it proves the file whole)."""

    def check() -> Rejection | None:
        with _GATE.reserve(reserve):
            try:
                return _jpeg_scan_complete(data, layout, statistics)
            except _DECODE_ERRORS as exc:
                return _decode_failure("JPEG", exc)

    return check


def memory_plan(data: bytes, limits: Limits = Limits(), *,  # noqa: B008
                model_side: int | PictureRule | None = None) -> MemoryEstimate | Rejection:
    """The memory plan :func:`normalise` would follow for ``data`` (or its refusal before planning); nothing decoded."""
    inspected = _inspect(data, limits, model_side)
    if isinstance(inspected, Rejection):
        return inspected
    inspected.image.close()
    return inspected.plan


def _inspect(data: bytes, limits: Limits, model_side: int | PictureRule | None = None) -> _Inspection | Rejection:
    """Header, structure and plan: everything decided before the first pixel is decoded."""
    if not data:
        return Rejection("empty", "the blob is empty (0 bytes): an upload that never completed, or a placeholder")
    oversize = input_too_large(len(data), limits)
    if oversize:
        return oversize
    costly = decode_cost.too_costly(data, limits.cost)  # before Pillow: its header parsing is part of the cost
    if costly:
        return Rejection(decode_cost.REASON, costly)
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
    layout = None
    if fmt in _JPEG_FAMILY:  # an MPO's first picture is a JPEG like any other: the same completeness checks
        layout = _jpeg_layout(data)
        if isinstance(layout, Rejection):
            return layout
    elif fmt == "PNG":
        problem = _png_checksums(data)
        if problem:
            return problem
    try:
        needed = _changes_needed(data, image, limits)
    except _DECODE_ERRORS as exc:  # reading EXIF or counting frames can hit the end of a damaged file
        return _decode_failure(fmt, exc)
    plan = estimate_memory("JPEG" if fmt in _JPEG_FAMILY else fmt, image.mode, image.size, len(data), limits,
                           convert=bool(needed), jpeg_coefficient_bytes=layout.coefficient_bytes if layout else 0,
                           checked_by_decode=not _ends_cleanly(data, fmt), model_side=model_side,
                           model_by_strips=fmt == "PNG" and png_strips.applicable(data))
    return _Inspection(image, layout, needed, plan)


def _open(data: bytes, limits: Limits) -> Image.Image | Rejection:
    """Parse the header only; name the format when it is one Pillow knows but we do not accept."""
    unsupported = completeness.unsupported_jpeg(data)  # Pillow calls a 12-bit JPEG unreadable, not unsupported
    if unsupported:
        return unsupported
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(ACCEPTED_FORMATS | CONVERTIBLE_FORMATS))
    except Image.DecompressionBombError as exc:
        return Rejection("decompression_bomb", f"the image declares more pixels than can be decoded safely ({exc})")
    except UnidentifiedImageError:
        return _identify_other(data)
    except _DECODE_ERRORS as exc:
        return _decode_failure("the", exc)
    width, height = image.size
    if width <= 0 or height <= 0:
        return Rejection("corrupt", f"{image.format} header declares a {width}x{height} image")
    if width * height > limits.max_pixels:
        return Rejection("decompression_bomb",
                         f"{image.format} image declares {width}x{height} = {width * height:,} pixels, above the "
                         f"{limits.max_pixels:,} this function decodes (a decompression bomb or an extreme scan); "
                         "downscale it before uploading")
    return image


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"),
)
"""Magic numbers of the formats we accept or convert: a file that starts like one but does not open is damaged."""
_BMP_HEADERS = frozenset({12, 40, 52, 56, 64, 108, 124})
"""BMP's info header sizes (bytes 14-17): two letters "BM" alone are too common in text to call a file a BMP."""
_MIN_SNIFFED_BYTES = 64
"""Shorter than this, a file that starts with a magic number is not taken for a damaged image (a test string, a
placeholder): it stays ``not_an_image``."""
_HEIF_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"hevc": "HEIC", b"hevx": "HEIC", b"heim": "HEIC",
                b"heis": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}
"""ISO base media ``ftyp`` brands of HEIF images (iPhone photos are HEIC): a real image format Pillow cannot read."""


def _heif_kind(data: bytes) -> str | None:
    """HEIC / HEIF / AVIF from the ``ftyp`` box (major brand, then compatible brands), else None."""
    if data[4:8] != b"ftyp" or len(data) < 16:
        return None
    box_size = int.from_bytes(data[:4], "big")
    brands = [data[8:12]] + [data[i:i + 4] for i in range(16, min(box_size, len(data), 64), 4)]
    for brand in brands:
        if brand in _HEIF_BRANDS:
            return _HEIF_BRANDS[brand]
    return None


def _identify_other(data: bytes) -> Rejection:
    """Not one of ours: a damaged file of one of our formats, another image format (say which), or not an image?"""
    heif = _heif_kind(data)
    if heif:
        return Rejection("unsupported_format",
                         f"{heif} images (iPhone and some Android photos) are not supported; export them as JPEG "
                         "(on iPhone: Settings > Camera > Formats > Most Compatible) or convert before uploading")
    if len(data) >= _MIN_SNIFFED_BYTES:
        for magic, fmt in _SIGNATURES:
            if data.startswith(magic) and (fmt != "BMP" or int.from_bytes(data[14:18], "little") in _BMP_HEADERS):
                return _damaged_header(data, fmt)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _damaged_header(data, "WEBP")
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


def _damaged_header(data: bytes, fmt: str) -> Rejection:
    """The file starts as ``fmt`` but Pillow cannot read its header: say why in Pillow's words when it has any."""
    detail = ""
    Image.init()
    factory = Image.OPEN.get(fmt, (None, None))[0]
    try:
        if factory is not None:  # the plugin itself: Image.open would hide its reason behind "cannot identify"
            factory(io.BytesIO(data), None).close()
    except Exception as exc:  # the reason Pillow gives (a checksum, a field) is the most useful thing to tell
        detail = " ".join(str(exc).split()) or type(exc).__name__
    return Rejection("corrupt", f"{fmt} file is damaged: its header cannot be read" + (f" ({detail})" if detail else ""))


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


def _orientation(image: Image.Image) -> int | None:
    """EXIF orientation from the header, without decoding (:func:`_header_exif`)."""
    if image.format == "TIFF":
        return None  # Pillow (12) applies the Orientation tag itself when it loads the image (and reports the turned
        # size); turning it again here rotated every oriented TIFF twice
    exif = _header_exif(image)
    return exif.get(_EXIF_ORIENTATION) if exif is not None else None


def _header_exif(image: Image.Image) -> Image.Exif | None:
    """The EXIF tags of an opened image, read from its header only: Pillow's ``getexif`` on a PNG decodes the whole
    image to look for an eXIf chunk after the pixels (a 480 MB decode for a 10950 x 10950 RGBA PNG), so a PNG's EXIF
    counts only when it comes before the image data. None for formats without EXIF (GIF, BMP)."""
    if image.format == "PNG":
        raw = image.info.get("exif")
        if not raw:
            return None
        exif = Image.Exif()
        exif.load(raw if raw.startswith(b"Exif") else b"Exif\x00\x00" + raw)
        return exif
    if image.format in ("JPEG", "MPO", "WEBP", "TIFF"):
        return image.getexif()
    return None


_EXIF_MAKE = 0x010F
_EXIF_MODEL = 0x0110
EXIF_TEXT_CHARS = 64
"""Characters kept of an EXIF text field in a record: makes and models are short ("Canon", "iPhone 15 Pro"); the
field itself may hold up to 64 KB of whatever the file's author wrote."""


def exif_camera(image: Image.Image) -> dict[str, str] | None:
    """EXIF ``make`` and ``model`` from the header (:func:`_header_exif`), where present, for a record: what a monitor
    slices by camera on. Attacker-controlled text, so each is trimmed of NULs and spaces, cut to
    :data:`EXIF_TEXT_CHARS` and escaped where not printable (a newline, a control or a bidi override becomes
    ``\\n``, ``\\x1b``, ``\\u202e``): it cannot forge a line or hide text where the record is shown. None without either."""
    try:
        exif = _header_exif(image)
        if exif is None:
            return None
        found = {key: _exif_text(exif.get(tag)) for key, tag in (("make", _EXIF_MAKE), ("model", _EXIF_MODEL))}
    except _DECODE_ERRORS:  # a damaged EXIF block names no camera; the image is judged on its pixels
        return None
    return {key: text for key, text in found.items() if text} or None


def _exif_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value[:4 * EXIF_TEXT_CHARS].decode("latin-1")
    if not isinstance(value, str):
        return None
    kept: list[str] = []
    used = 0
    for c in value[:4 * EXIF_TEXT_CHARS].strip("\x00 \t\r\n"):
        piece = c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
        if used + len(piece) > EXIF_TEXT_CHARS:  # whole escapes only: never half of one at the cut
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) or None


def _changes_needed(data: bytes, image: Image.Image, limits: Limits) -> list[str]:
    """What has to change, from the header alone (cheap), as short codes in the order they are applied."""
    fmt = image.format
    needed = []
    if getattr(image, "is_animated", False):
        needed.append("first_frame")
    if _orientation(image) not in (1, None):
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


def _check_complete(data: bytes, fmt: str, statistics: dict[str, float | str] | None = None) -> Rejection | None:
    """Prove a file that needs no change is whole. JPEG and PNG were proved already (:func:`_jpeg_scan_complete`,
    :func:`_png_checksums`) unless a PNG lacks its end chunk; other formats (GIF, BMP: no end marker) are decoded,
    and that decode's luminance is put in ``statistics``."""
    if fmt == "JPEG" or _ends_cleanly(data, fmt):
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if statistics is not None:
                statistics.update(luminance(image, "decoded"))
    except _DECODE_ERRORS as exc:
        return _decode_failure(fmt, exc)
    return None


def _png_checksums(data: bytes) -> Rejection | None:
    """Every chunk's CRC, up to IEND (Pillow's ``verify``: no pixels decoded, a CRC-32 over the file).

    Pillow's decoder skips the CRCs of image data chunks, so a flipped bit in IDAT would otherwise reach prediction
    as a silently different picture, or decode as garbage.
    """
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.verify()
    except _DECODE_ERRORS as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, EOFError) or "truncated" in text.lower():
            return _decode_failure("PNG", exc)
        return Rejection("corrupt", f"PNG image is damaged: a chunk's checksum does not match its data ({text})")
    return None


@dataclass(frozen=True)
class _JpegLayout:
    """What the marker segments say: where the image data ends (its EOI) and what decoding it will hold."""

    eoi: int
    scans: int
    progressive: bool
    coefficient_bytes: int
    last_scan_data: int
    header: tuple[tuple[int, int], ...] = ()
    """Where the header's markers and segments are, up to the first scan's marker, when bytes that are neither lay
    between them (decoders skip them with a warning); empty when there were none."""
    first_scan: int = 0


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""0xFF followed by neither stuffing (00), a restart marker (D0-D7) nor fill (FF): a marker that ends a scan's data.
A single literal first byte lets the regular expression engine skip to each 0xFF in C: 0.8 ms a megabyte of scan
data against 1.4 ms for a ``bytes.find`` loop in Python (a photo's megabyte holds some 7,600 0xFF bytes)."""


def _next_marker(data: bytes, start: int) -> int:
    """Where a scan's entropy-coded data ends: the 0xFF of the first marker after ``start`` (the last 0xFF of a run of
    fill bytes); -1 if the file ends first."""
    found = _MARKER.search(data, start)
    return found.start() if found else -1


def _jpeg_layout(data: bytes) -> _JpegLayout | Rejection:
    """Walk the JPEG's marker segments (skipping each scan's entropy-coded data) to its end-of-image marker.

    Cheap (segment lengths and one regular-expression search per scan, in C) and it catches what a header parse
    cannot: a file that ends inside a scan or a segment (``truncated``), and a progressive file whose last scans are
    missing (each coefficient of each component must be refined down to its last bit). It also gives the memory a
    decode will hold: a progressive or multi-scan JPEG keeps every DCT coefficient (2 bytes per sample) at any scale.
    """
    n = len(data)
    pos, scans, progressive, last_scan_data = 2, 0, False, 0
    components: dict[int, tuple[int, int]] = {}
    width = height = 0
    refined: dict[int, set[int]] = {}
    header: list[tuple[int, int]] = [(0, 2)]
    garbage, first_scan = False, 0
    while True:
        if pos + 1 >= n:
            return Rejection("truncated", f"JPEG image is truncated: the file ends at byte {n:,} before its end "
                                          "marker (an interrupted upload?)")
        if data[pos] != 0xFF:  # garbage between segments: decoders skip it, so do we
            garbage = garbage or not scans
            found = data.find(b"\xff", pos)
            if found < 0:
                pos = n
                continue
            pos = found
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:
            break
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            if not scans:
                header.append((pos, pos + 2))
            pos += 2
            continue
        if pos + 4 > n:
            pos = n
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > n:
            return Rejection("truncated", f"JPEG image is truncated: a segment at byte {pos:,} runs past the end of "
                                          "the file (an interrupted upload?)")
        body = data[pos + 4:end]
        if not scans and marker != 0xDA:
            header.append((pos, end))
        if marker in _SOF_MARKERS and len(body) >= 6:
            progressive = marker in (0xC2, 0xC6, 0xCA, 0xCE)
            height, width = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
            for i in range(body[5]):
                entry = body[6 + 3 * i:9 + 3 * i]
                if len(entry) == 3:
                    components[entry[0]] = (entry[1] >> 4, entry[1] & 0x0F)
        if marker == 0xDA:
            if not components:
                return Rejection("corrupt", "JPEG image is damaged: image data comes before the frame header")
            first_scan = first_scan or pos
            scans += 1
            count = body[0] if body else 0
            ids = [body[1 + 2 * i] for i in range(count) if 1 + 2 * i < len(body)]
            spectral = body[1 + 2 * count:4 + 2 * count]
            if len(spectral) == 3 and spectral[2] & 0x0F == 0:
                for ident in ids:
                    refined.setdefault(ident, set()).update(range(spectral[0], min(spectral[1], 63) + 1))
            last_scan_data = end
            following = _next_marker(data, end)
            if following < 0:
                return Rejection("truncated", "JPEG image is truncated: the file ends inside the image data, with "
                                              "no end marker (an interrupted upload?)")
            pos = following
            continue
        pos = end
    if not scans:
        return Rejection("corrupt", "JPEG image is damaged: it ends before any image data")
    if progressive and any(refined.get(ident, set()) != set(range(64)) for ident in components):
        return Rejection("truncated", "JPEG image is truncated: its last progressive scans are missing (a cut file "
                                      "with an end marker appended?)")
    coefficient_bytes = 0
    if scans > 1 and components:
        h_max = max(h for h, _ in components.values()) or 1
        v_max = max(v for _, v in components.values()) or 1
        mcus_x, mcus_y = math.ceil(width / (8 * h_max)), math.ceil(height / (8 * v_max))
        coefficient_bytes = sum(mcus_x * h * mcus_y * v * 128 for h, v in components.values())
    return _JpegLayout(eoi=pos, scans=scans, progressive=progressive, coefficient_bytes=coefficient_bytes,
                       last_scan_data=last_scan_data, header=tuple(header) if garbage else (), first_scan=first_scan)


def _strict_input(data: bytes, layout: _JpegLayout) -> bytes:
    """The file as libjpeg's strict decode should read it: up to its end marker, and without bytes between the
    header's segments, which decoders skip with a warning (some writers leave them) that would stop a strict decode
    before it proved anything, and send a whole file to the picture test's three reads."""
    if not layout.header:
        return data[:layout.eoi] + _EOI
    return b"".join(data[start:end] for start, end in layout.header) + data[layout.first_scan:layout.eoi] + _EOI


_EOI = b"\xff\xd9"
_ZEROS = b"\x00" * 256


def _jpeg_scan_complete(data: bytes, layout: _JpegLayout,
                        statistics: dict[str, float | str] | None = None) -> Rejection | None:
    """Prove the image data reaches the last block, though an end marker follows it whatever was cut before.

    libjpeg meets an end marker that comes too early with a warning ("premature end of data segment") Pillow does not
    pass on, and fills the rest of the picture with mid grey: a truncated upload with FFD9 appended decodes "fine". So
    a YCbCr or grey JPEG is first decoded at 1/8 scale by libjpeg-turbo through simplejpeg with warnings as errors
    (:func:`_strict_scan`): no warning proves the data whole, that warning proves it cut, wherever the cut is. Bytes
    between the header's segments are left out of that decode (:func:`_strict_input`), and a warning about bytes in
    front of the end marker, which libjpeg gives only after the last block, proves it whole too.

    Any other warning (a stray byte between scans, an odd code), and CMYK/YCCK files, take the picture test: decode at
    1/4 scale with Pillow (DC and the first AC coefficients; the whole stream is still read). A complete file's last
    block is rarely exactly the fill value, which ends the check with one decode. When it is, decode at 1/4 scale
    again with more data inserted before the end marker: zero bytes, then the start of the scan's own data (codes
    valid for its tables). After complete data the
    extra bytes are ignored; a cut scan decodes them as more blocks and the picture changes. Its limit
    (tests/functions/test_fn_images.py generates it): a cut after every block's DC value (inside a progressive file's
    last scan, or the last MCU's AC coefficients) passes; its picture lacks only fine detail.

    ``statistics``: when the file is whole, the luminance of the 1/8-scale picture (each pixel an 8 x 8 block's mean:
    the strict decode's, or the picture test's 1/4 decode halved) is put there (:func:`luminance`): the record's
    image statistics at no extra decode.
    """
    strict = _strict_scan(_strict_input(data, layout), statistics)
    return _picture_test(data, layout, statistics) if strict is _UNDECIDED else strict


def _picture_test(data: bytes, layout: _JpegLayout,
                  statistics: dict[str, float | str] | None = None) -> Rejection | None:
    """The second half of :func:`_jpeg_scan_complete`, for a file libjpeg's strict decode could not decide."""
    body = data[:layout.eoi]
    try:
        # One 1/4-scale decode is the picture tested, the reference for the padded decodes and (halved: each pixel
        # an 8 x 8 block's mean, as a 1/8 decode gives) the statistics: three full reads of the data at most, where a
        # 1/8 decode first and a 1/4 reference after it made four (2.0 s of CPU for a 32 MB JPEG; the limit is 2).
        quarter = _decode_scaled(body + _EOI, 4)
        measured = luminance(quarter.reduce(2), "scan_check") if statistics is not None else {}
        fill = _last_pixel_is_fill(quarter)
        reference = quarter.tobytes() if fill else b""
        quarter.close()
        if fill:
            own = data[layout.last_scan_data:min(layout.eoi, layout.last_scan_data + 4096)]
            for padding in (_ZEROS, own):
                if padding and _decode_scaled(body + padding + _EOI, 4).tobytes() != reference:
                    return Rejection("corrupt", "JPEG image data stops before the image does, and an end marker "
                                                "follows (a cut file with its end appended): the rest would decode as "
                                                "flat grey")
    except _DECODE_ERRORS as exc:
        return _decode_failure("JPEG", exc)
    if statistics is not None:
        statistics.update(measured)
    return None


_UNDECIDED = object()


def _strict_scan(data: bytes, statistics: dict[str, float | str] | None = None) -> Rejection | None | object:
    """libjpeg-turbo's own word on a YCbCr or grey JPEG, from a strict 1/8-scale decode: None (no warning, or none
    before the padding in front of the end marker: whole), a ``corrupt`` rejection (it met a marker where scan data
    should be), or ``_UNDECIDED`` (another warning, another colour space, or no verdict: the picture test decides)."""
    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
        if colorspace not in ("YCbCr", "Gray"):
            return _UNDECIDED
        # The smallest size (1/8) and grey only: every scan's data is still read, the least work is done with it.
        grey = simplejpeg.decode_jpeg(data, colorspace="GRAY", min_width=1, min_height=1, strict=True)
    except ValueError as exc:
        if _PREMATURE_END in str(exc):
            return _premature_end(exc)
        if _EXTRANEOUS_BEFORE_END not in str(exc):
            return _UNDECIDED
        if statistics is None:
            return None
        # Whole: a second decode, without the stop on the warning, gives the statistics (two reads, not five)
        grey = simplejpeg.decode_jpeg(data, colorspace="GRAY", min_width=1, min_height=1, strict=False)
    if statistics is not None:  # libjpeg's grey is the luma Y itself: BT.601, as Pillow's convert("L")
        statistics.update(luminance(Image.fromarray(grey[:, :, 0], "L"), "scan_check"))
    return None


def _premature_end(exc: BaseException) -> Rejection:
    return Rejection("corrupt", "JPEG image data stops before the image does, and an end marker follows (a cut file "
                                f"with its end appended; libjpeg: {' '.join(str(exc).split())})")


def _decode_scaled(data: bytes, scale: int) -> Image.Image:
    """Decode a JPEG at 1/``scale`` (libjpeg's scaled IDCT: less memory and time, the whole stream still read)."""
    image = Image.open(io.BytesIO(data), formats=["JPEG"])
    image.draft(image.mode, (max(1, image.width // scale), max(1, image.height // scale)))
    image.load()
    return image


def _last_pixel_is_fill(image: Image.Image) -> bool:
    """libjpeg's fill for missing blocks: all-zero coefficients, i.e. sample value 128 in every component. Through
    the colour transforms that is 128 grey in RGB and L; in CMYK, 127 or 128 in each channel (Adobe's inverted CMYK
    gives 127, YCCK's K passes 128 through): any of those counts, so a cut is never missed; only a whole file whose
    last pixel happens to be one of them takes the padded decodes."""
    pixel = image.getpixel((image.width - 1, image.height - 1))
    values = pixel if isinstance(pixel, tuple) else (pixel,)
    if image.mode == "CMYK":
        return all(value in (127, 128) for value in values)
    fill = {"RGB": (128, 128, 128), "L": (128,)}.get(image.mode)
    return fill is None or tuple(values) == fill


_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _convert(data: bytes, image: Image.Image, needed: list[str], plan: MemoryEstimate,
             limits: Limits, model_side: int | PictureRule | None = None,
             camera: dict[str, str] | None = None) -> NormalisedImage | Rejection:
    """Decode as the plan says and apply ``needed`` in the order that keeps memory lowest: decode (JPEGs at the
    planned scale), reduce to 8-bit grey what has no cheaper downscale, downscale, rotate, and only then convert
    modes on the smaller image. Each step releases the image before it. With ``model_side``, the model's picture is
    made from the converted image before it is encoded (:func:`_model_picture`)."""
    fmt = image.format or "unknown"
    original_size = image.size
    changes: list[str] = []
    orientation = _orientation(image) if "exif_orientation" in needed else 1
    if plan.decode_scale > 1:
        image.draft(image.mode, (max(1, image.width // plan.decode_scale), max(1, image.height // plan.decode_scale)))
    if "first_frame" in needed:
        # Counted from the structure: Pillow's own TIFF count is O(n^2) (decode_cost refused what is over its cap).
        frames = decode_cost.frame_count(data, fmt, limits.cost) or getattr(image, "n_frames", 1)
        image.seek(0)
        changes.append(f"animated {fmt} with {frames} frames: first frame used")
    image.load()
    work = image
    if work.size != original_size:
        why = (f"to fit the {limits.memory_budget_bytes // MiB} MiB memory budget" if max(original_size) <= limits.max_side
               or math.ceil(max(original_size) / plan.decode_scale) < limits.max_side
               else f"longest side at most {limits.max_side} px")
        changes.append(f"decoded at 1/{plan.decode_scale} scale, {work.width}x{work.height} ({why})")
    if work.mode == "1":
        work = _replace(work, work.convert("L"))
    if "to_8_bit" in needed and work.mode.startswith("I;16"):
        work = _to_8_bit(work)
        changes.append("16-bit samples reduced to 8-bit")
        needed = [step for step in needed if step != "to_8_bit"]
    target = _target_size(work.size, plan, limits)
    if target != work.size:
        work = _replace(work, _downscale(work, target))
        why = (f"to fit the {limits.memory_budget_bytes // MiB} MiB memory budget" if plan.memory_shrink
               else f"longest side at most {limits.max_side} px")
        changes.append(f"downscaled from {original_size[0]}x{original_size[1]} to {work.width}x{work.height} "
                       f"({why})")
    if orientation in _TRANSPOSE_FOR_ORIENTATION:
        work = _replace(work, work.transpose(_TRANSPOSE_FOR_ORIENTATION[orientation]))
        changes.append(f"rotated as EXIF orientation {orientation} says")
    if "to_8_bit" in needed:
        bits = "32-bit" if work.mode in ("I", "F") else "16-bit"
        work = _to_8_bit(work)
        changes.append(f"{bits} samples reduced to 8-bit")
    if "to_rgb" in needed and work.mode != "RGB":
        changes.append(f"{work.mode} converted to RGB")
        work = _replace(work, work.convert("RGB"))
    if "convert_format" in needed:
        changes.append(f"{fmt} converted")
    if "shrink_bytes" in needed and not changes:
        changes.append(f"{len(data):,} bytes is above the {limits.max_bytes:,}-byte prediction limit")
    picture = _model_picture(work, model_side) if model_side is not None else None
    statistics = luminance(work, "converted")  # the picture sent for prediction, before it is encoded
    encoded = _encode_within(work, fmt, limits, changes)
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
                           original_bytes=len(data), changes=tuple(changes), decoded=picture,
                           statistics=statistics, camera=camera)


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """Release ``old``'s pixels now (not when the caller's last reference goes): the next step's peak is then only
    its own input and output."""
    if new is not old:
        old.close()
    return new


def _target_size(size: tuple[int, int], plan: MemoryEstimate, limits: Limits) -> tuple[int, int]:
    """The working size: within ``max_side`` and the plan's working pixels, aspect ratio kept."""
    width, height = size
    factor = min(1.0, limits.max_side / max(width, height), math.sqrt(plan.work_pixels / (width * height)))
    if factor >= 1.0:
        return size
    return (min(limits.max_side, max(1, round(width * factor))), min(limits.max_side, max(1, round(height * factor))))


def _downscale(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Box-average by a whole factor first (cheap, and the big buffer is gone sooner), then Lanczos to the size.

    Palette images cannot be averaged: they are sampled down to twice the size, made RGB(A), then filtered.
    """
    if image.mode == "P":
        if image.width >= 4 * size[0] and image.height >= 4 * size[1]:
            image = image.resize((2 * size[0], 2 * size[1]), Image.Resampling.NEAREST)
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    factor = min(image.width // size[0], image.height // size[1])
    if factor >= 2 and not image.mode.startswith("I;16"):
        image = image.reduce(factor)
    return image.resize(size, Image.Resampling.LANCZOS)


def _to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit grey (I;16*) maps 0..65535 onto 0..255; 32-bit int/float is stretched over its own range.

    The scaled copy is made, the input released, then the copy converted: three buffers never coexist.
    """
    if image.mode.startswith("I;16"):
        scaled = image.point(lambda v: v * (1 / 257))
    elif image.mode in ("I", "F"):
        low, high = image.getextrema()
        span = (high - low) or 1
        scaled = image.point(lambda v: (v - low) * (255 / span))
    else:
        return image  # a 48/64-bit PNG Pillow already opened as 8-bit RGB(A): re-encoding writes 8 bits
    image.close()
    return _replace(scaled, scaled.convert("L"))


class _OverLimit(Exception):
    """An encoder's output passed the byte limit: stop it there rather than let it grow."""


class _CappedBuffer(io.BytesIO):
    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def write(self, chunk) -> int:  # type: ignore[override]
        if self.tell() + len(chunk) > self.cap:
            raise _OverLimit
        return super().write(chunk)


def _encode(image: Image.Image, fmt: str, quality: int, cap: int) -> bytes | None:
    """Encode, or None as soon as the output passes ``cap`` bytes (no use finishing it, nor holding it)."""
    buffer = _CappedBuffer(cap)
    try:
        if fmt == "JPEG":
            image = image if image.mode in ("L", "RGB") else image.convert("RGB")
            image.save(buffer, "JPEG", quality=quality, optimize=False)
        else:
            if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.mode else "RGB")
            image.save(buffer, "PNG", compress_level=6)
    except _OverLimit:
        return None
    return buffer.getvalue()


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _encode_within(image: Image.Image, source_fmt: str, limits: Limits,
                   changes: list[str]) -> tuple[bytes, str] | None:
    """Encode under the byte limit: the natural format first, then JPEG at falling quality, then smaller sizes."""
    natural = "JPEG" if source_fmt == "JPEG" or (source_fmt in CONVERTIBLE_FORMATS and not _has_alpha(image)) \
        else "PNG"
    out = _encode(image, natural, limits.jpeg_qualities[0], limits.max_bytes)
    if out is not None:
        return out, natural
    flat = _replace(image, image.convert("RGB")) if _has_alpha(image) or image.mode not in ("L", "RGB") else image
    for quality in limits.jpeg_qualities:
        out = _encode(flat, "JPEG", quality, limits.max_bytes)
        if out is not None:
            changes.append(f"re-encoded as JPEG quality {quality} to fit {limits.max_bytes:,} bytes")
            return out, "JPEG"
    current = flat
    while min(current.size) * 3 // 4 >= limits.min_side_when_shrinking:
        current = _replace(current, current.resize((current.width * 3 // 4, current.height * 3 // 4),
                                                   Image.Resampling.LANCZOS))
        out = _encode(current, "JPEG", limits.jpeg_qualities[-1], limits.max_bytes)
        if out is not None:
            changes.append(f"shrunk to {current.width}x{current.height}, JPEG quality {limits.jpeg_qualities[-1]}, "
                           f"to fit {limits.max_bytes:,} bytes")
            return out, "JPEG"
    return None

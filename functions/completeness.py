"""Is the file whole, and is it a variant we decode? Pure checks of a container's bytes, one per format.

Why a module of its own: a decoder that meets the end of its data early does not always say so. libjpeg fills a cut
JPEG with grey (:mod:`functions.images` proves JPEG scans whole); Pillow's PNG decoder stops at IEND and leaves the
rows it never received black when a cut upload is "closed" again with an IEND chunk; a PNG whose compressed data is
damaged, or whose compressed text chunk after the image data cannot be read, passes every CRC yet fails when the
pixels are finally decoded, which on the in-process model path happened outside validation (a crash, five attempts,
a poisoned message and no record). These functions read the container's own structure and the zlib streams it
holds, so the verdict is the same on every path, with no pixel buffer: bytes in, a :class:`Rejection` or None out.

The cost is one inflate of the image data, streamed (a bounded window, never the decoded image): 16 ms of CPU for a
3.2 MB PNG of 1200 x 900 noise (``time.process_time()`` around :func:`png_complete`), 0.37 s for the 400 MiB of
rows of a 10240 x 10240 RGBA PNG. It runs after the memory plan, so a PNG refused by its header is never inflated.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

__all__ = ["PngRows", "Rejection", "jpeg_precision", "png_complete", "png_expected_size", "png_image_data",
           "unsupported_jpeg"]


@dataclass(frozen=True)
class Rejection:
    """Why an image cannot be classified. ``reason`` is a stable code (for queries), ``message`` says it to a person.

    (Defined here, the lowest module of the image checks, and re-exported by :mod:`functions.images`.)"""

    reason: str
    message: str

    def summary(self) -> dict:
        return {"reason": self.reason, "message": self.message}


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
"""Samples per pixel by PNG colour type (grey, RGB, palette, grey + alpha, RGBA)."""
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
"""Adam7 passes: (x start, y start, x step, y step)."""
_INFLATE_WINDOW = 1 << 20
"""Decompressed bytes produced per step of the streamed inflate: the check never holds more than this."""
TEXT_CHUNK_LIMIT = 1 << 20
"""What a compressed text or ICC chunk may inflate to: Pillow's ``PngImagePlugin.MAX_TEXT_CHUNK`` (1 MiB) refuses
more with an error raised when the pixels are loaded."""


def _png_corrupt(what: str) -> Rejection:
    return Rejection("corrupt", f"PNG image is damaged: {what}")


def _png_raw_size(width: int, height: int, bit_depth: int, color_type: int, interlace: int) -> int:
    """Bytes the IDAT stream must inflate to: each row's filter byte and its packed samples, per Adam7 pass."""
    bits = _CHANNELS[color_type] * bit_depth
    if not interlace:
        return height * (1 + math.ceil(width * bits / 8))
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        pass_width, pass_height = max(0, math.ceil((width - x0) / dx)), max(0, math.ceil((height - y0) / dy))
        if pass_width and pass_height:
            total += pass_height * (1 + math.ceil(pass_width * bits / 8))
    return total


def _inflates_whole(chunks: list[memoryview], limit: int,
                    rows: PngRows | None = None) -> tuple[int, bool, tuple[int, int] | None]:
    """Stream ``chunks`` through one zlib decompressor: (bytes produced, whether the stream ended, the first row whose
    filter type is not one PNG defines, when ``rows`` says where rows start).

    At most ``limit`` + one window is produced (a stream longer than it should be stops there). Raises zlib.error."""
    inflater = zlib.decompressobj()
    produced = 0
    for chunk in chunks:
        pending = bytes(chunk)
        while pending and not inflater.eof and produced <= limit:
            window = inflater.decompress(pending, _INFLATE_WINDOW)
            bad = rows.bad_filter(window, produced) if rows else None
            if bad:
                return produced, inflater.eof, bad
            produced += len(window)
            pending = inflater.unconsumed_tail
        if inflater.eof or produced > limit:
            break
    while not inflater.eof and produced <= limit:  # output still buffered inside zlib
        step = inflater.decompress(b"", _INFLATE_WINDOW)
        if not step:
            break
        produced += len(step)
    return produced, inflater.eof, None


class PngRows:
    """Where a PNG's filtered rows start in its inflated image data (each pass's, for an interlaced one), to find a
    row whose filter byte is not one of PNG's five (0-4): Pillow's decoder fails on it, so the model path, which
    decodes, and the API path, which does not, must both call it damaged. One strided slice per window: no loop per
    row in Python."""

    def __init__(self, data: bytes) -> None:
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        bits = _CHANNELS[data[25]] * data[24]
        passes = _ADAM7 if data[28] else ((0, 0, 1, 1),)
        self._runs: list[tuple[int, int, int, int]] = []  # (first byte, row length, rows, rows before)
        start = before = 0
        for x0, y0, dx, dy in passes:
            pass_width, pass_height = max(0, math.ceil((width - x0) / dx)), max(0, math.ceil((height - y0) / dy))
            if pass_width and pass_height:
                length = 1 + math.ceil(pass_width * bits / 8)
                self._runs.append((start, length, pass_height, before))
                start += length * pass_height
                before += pass_height

    def bad_filter(self, window: bytes, offset: int) -> tuple[int, int] | None:
        """(row, filter type) of the first row starting in ``window`` (inflated bytes from ``offset`` on) whose
        filter type is above 4; rows are counted from 0 over all passes."""
        end = offset + len(window)
        for start, length, count, before in self._runs:
            stop = start + length * count
            if stop <= offset or start >= end:
                continue
            first = start + max(0, -(-(offset - start) // length)) * length
            filters = window[first - offset:min(stop, end) - offset:length]
            if filters and max(filters) > 4:
                index = next(i for i, value in enumerate(filters) if value > 4)
                return before + (first - start) // length + index, filters[index]
        return None


def _text_inflates(body: bytes) -> bool:
    """A compressed text/ICC payload (method byte, then zlib) that Pillow will read without an error."""
    if not body or body[0] != 0:
        return False
    try:
        produced, ended, _ = _inflates_whole([memoryview(body[1:])], TEXT_CHUNK_LIMIT)
    except zlib.error:
        return False
    return ended and produced <= TEXT_CHUNK_LIMIT


def png_complete(data: bytes, *, image_data: bool = True) -> Rejection | None:
    """The PNG's image data is one zlib stream that ends, inflates to exactly the rows IHDR declares, and every
    compressed ancillary chunk (zTXt, compressed iTXt, iCCP) can be read; checked chunk by chunk to IEND.

    Why: IEND and CRCs prove only that the chunks are intact, not that the image data is all there (a cut upload
    closed with an IEND chunk decodes with black rows) nor that it inflates (damaged data with recomputed CRCs).
    CRCs themselves are Pillow's ``verify`` (:func:`functions.images._png_checksums`), which runs first.

    ``image_data=False``: everything but the image data's inflate, for a caller that inflates it anyway (the model
    path's strip decode, :mod:`functions.png_strips`) and gives its count to :func:`png_image_data`: one inflate
    instead of two (0.37 s of CPU for a 10240 x 10240 RGBA PNG).
    """
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 33:
        return None  # not a PNG this check can read: the header parse has already said what it is
    if data[25] not in _CHANNELS:
        return _png_corrupt(f"its header declares colour type {data[25]}")
    view = memoryview(data)
    pos, idat, texts = 8, [], []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body_end = pos + 8 + length
        if body_end > len(data):
            return Rejection("truncated", f"PNG image is truncated: its {kind.decode('latin-1')} chunk at byte "
                                          f"{pos:,} runs past the end of the file (an interrupted upload?)")
        if kind == b"IDAT":
            idat.append(view[pos + 8:body_end])
        elif kind in (b"zTXt", b"iCCP"):
            texts.append((kind, data[pos + 8:body_end].split(b"\x00", 1)[-1]))
        elif kind == b"iTXt":
            _keyword, _, rest = data[pos + 8:body_end].partition(b"\x00")
            if rest[:1] == b"\x01":  # compressed: flag, method, then the payload after two NUL-ended fields
                texts.append((kind, rest[1:2] + rest[2:].split(b"\x00", 2)[-1]))
        elif kind == b"IEND":
            break
        pos = body_end + 4
    if not idat:
        return _png_corrupt("it holds no image data (IDAT)")
    if image_data:
        try:
            produced, ended, bad_filter = _inflates_whole(idat, png_expected_size(data), PngRows(data))
        except zlib.error as exc:
            return png_image_data(data, 0, False, str(exc))
        problem = png_image_data(data, produced, ended, bad_filter=bad_filter)
        if problem:
            return problem
    for kind, body in texts:
        if not _text_inflates(body):
            return _png_corrupt(f"its {kind.decode('latin-1')} chunk's compressed data cannot be read (a zlib "
                                f"stream that is damaged, cut, or over {TEXT_CHUNK_LIMIT // (1 << 20)} MiB)")
    return None


def png_expected_size(data: bytes) -> int:
    """Bytes a PNG's image data must inflate to, from its header (every row's filter byte and samples)."""
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return _png_raw_size(width, height, data[24], data[25], data[28])


def png_image_data(data: bytes, produced: int, ended: bool, zlib_error: str | None = None, *,
                   bad_filter: tuple[int, int] | None = None) -> Rejection | None:
    """The verdict on a PNG's image data from its inflate: ``produced`` bytes (counted up to a little past what the
    rows need), whether the zlib stream ``ended``, or the ``zlib_error`` that stopped it; ``bad_filter``: (row, type)
    of a row whose filter type PNG does not define. None when it is exactly the rows the header declares. Shared by
    :func:`png_complete` and the model path's strip decode, so that both name a damaged or cut PNG the same way."""
    if zlib_error is not None:
        return _png_corrupt(f"its image data does not inflate (zlib: {zlib_error})")
    if bad_filter is not None:
        return _png_corrupt(f"row {bad_filter[0]:,} of its image data has filter type {bad_filter[1]}, and PNG "
                            "defines types 0 to 4 only (decoders refuse it)")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    expected = png_expected_size(data)
    if produced > expected:
        return _png_corrupt(f"its image data inflates to more than the {expected:,} bytes its {width}x{height} "
                            "rows need")
    if not ended or produced < expected:
        if not _png_has_end(data):
            return Rejection("truncated", "PNG image is truncated: the file ends inside its image data (an "
                                          "interrupted upload?)")
        return _png_corrupt(f"its image data stops after {produced:,} of the {expected:,} bytes its "
                            f"{width}x{height} rows need, and an end chunk follows (a cut file closed again: the "
                            "missing rows would decode as black); re-upload the original")
    return None


def _png_has_end(data: bytes) -> bool:
    """Whether the chunk walk from the signature reaches an IEND chunk inside the file."""
    pos = 8
    while pos + 8 <= len(data):
        if data[pos + 4:pos + 8] == b"IEND":
            return True
        pos += 12 + int.from_bytes(data[pos:pos + 4], "big")
    return False


_SOF = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless", 0xC5: "differential",
        0xC6: "differential progressive", 0xC7: "differential lossless", 0xC9: "arithmetic extended",
        0xCA: "arithmetic progressive", 0xCB: "arithmetic lossless", 0xCD: "arithmetic differential",
        0xCE: "arithmetic differential progressive", 0xCF: "arithmetic differential lossless"}


_LOSSLESS = frozenset({0xC3, 0xC7, 0xCB, 0xCF})
_LOSSLESS_PRECISIONS = frozenset(range(2, 17))
"""T.81: a DCT frame's samples are 8 or 12 bits; a lossless frame's 2 to 16."""


def jpeg_precision(data: bytes) -> tuple[int, int] | None:
    """(SOF marker, sample precision in bits) of a JPEG's frame header, from its marker segments; None when the
    file is not a JPEG or has no readable frame header."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            return None
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _SOF:
            # Only a whole frame header counts: a file cut inside it (and maybe closed with an end marker) holds a
            # "precision" byte that is whatever came next, which is damage, not a variant.
            whole = length >= 8 and pos + 2 + length <= len(data)
            return (marker, data[pos + 4]) if whole else None
        pos += 2 + length
    return None


def unsupported_jpeg(data: bytes) -> Rejection | None:
    """A JPEG whose frame header is valid but of a variant this app does not decode (12- or 16-bit samples, as
    medical and some raw-processing tools write): ``unsupported_format``, not ``corrupt``: nothing is damaged."""
    found = jpeg_precision(data)
    if found is None or found[1] == 8:
        return None
    marker, bits = found
    if bits not in (_LOSSLESS_PRECISIONS if marker in _LOSSLESS else (12,)):
        return None  # not a precision T.81 allows for this frame type: a damaged header, for the decoders to call
    return Rejection("unsupported_format",
                     f"JPEG image with {bits}-bit samples ({_SOF[marker]} frame, SOF{marker - 0xC0}) is not "
                     "supported: Custom Vision and this app decode 8-bit JPEG only; convert it to an 8-bit JPEG or "
                     "PNG before uploading")

"""Decode a PNG a strip of rows at a time, for the in-process model's picture: memory bounded by the strip, not the image.

Why: Pillow decodes a PNG into one full-size buffer (a 408 KB RGBA PNG of 10240 x 10240 is 400 MiB decoded) and has
no reduced decode for PNG (``draft`` is JPEG's). Custom Vision accepts such a file as it is, so the Prediction API
path never decodes it; the model path must, and either refused it or held 400 MiB for a 224 x 224 input.

How, with Pillow's own decoder and no pixel arithmetic in Python: the image data is inflated as a stream, a strip of
rows at a time, and the rows go, still filtered, to Pillow's PNG row decoder for an image of the strip's height (fed
as zlib stored blocks: a copy, never a compression), preceded by the previous strip's last row unfiltered (filter
type 0), which the strip's first row may be filtered against (Up, Average, Paeth). Pillow unfilters the strip
exactly as it would have in the whole image. Rows of 1-, 2- and 4-bit images are unfiltered as 8-bit grey rows of
the same byte length (the filters work on bytes, one byte per "pixel" below 8 bits), then unpacked with Pillow's own
raw mode for the format. The inflate is the file's only one on this path: its count of bytes is the completeness
verdict (:class:`ImageDataError`), so the file check does not inflate it first. CPU for the 10240 x 10240 RGBA PNG,
validation and the model's picture: 2.6 s with each strip wrapped in a PNG of its own and the image data inflated
twice, 1.4 s now (``python bench/bench_decode_cost.py --only PNG``).

What it handles: non-interlaced PNGs of 1 to 8 bits per sample (what the app sends unchanged; 16-bit PNGs are
converted, and decoded whole under their own plan). :func:`applicable` says whether a file is one.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator

from PIL import Image, PngImagePlugin

from functions import completeness

__all__ = ["STRIP_BYTES_PER_PIXEL", "ImageDataError", "applicable", "strips"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
STRIP_BYTES_PER_PIXEL = 24
"""Memory of one strip per pixel at most (4 bytes a pixel per copy, Pillow's storage of RGB and RGBA): the inflated
rows of the strip as they arrive (at most the strip), the decoder's image of them, its copy without the previous
strip's row, and the RGB copy the caller narrows (4 copies; 1-, 2- and 4-bit rows add their unpacked copy, smaller);
the measured peak of the model path's PNGs (tests/functions/test_fn_memory_budget.py) fits it."""


class ImageDataError(ValueError):
    """The image data is not the rows the header declares: ``produced`` bytes inflated (counted to one past what the
    rows need), whether the zlib stream ``ended``, the ``zlib_error`` that stopped it, or the (row, type) of a row
    whose filter type PNG does not define. The caller names it as the file check would
    (:func:`functions.completeness.png_image_data`)."""

    def __init__(self, produced: int, ended: bool, zlib_error: str | None = None, *,
                 bad_filter: tuple[int, int] | None = None) -> None:
        super().__init__(f"PNG image data: {produced:,} bytes inflated, stream {'ended' if ended else 'not ended'}"
                         + (f", zlib: {zlib_error}" if zlib_error else "")
                         + (f", row {bad_filter[0]} has filter type {bad_filter[1]}" if bad_filter else ""))
        self.produced, self.ended, self.zlib_error, self.bad_filter = produced, ended, zlib_error, bad_filter


def _header(data: bytes) -> tuple[int, int, int, int, int] | None:
    if not data.startswith(_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 33:
        return None
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return width, height, depth, color_type, interlace


def applicable(data: bytes) -> bool:
    """A non-interlaced PNG of at most 8 bits per sample, of a colour type Pillow reads: :func:`strips` decodes it."""
    header = _header(data)
    if header is None:
        return False
    _, _, depth, color_type, interlace = header
    return interlace == 0 and (depth, color_type) in PngImagePlugin._MODES and depth <= 8


def _chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    view = memoryview(data)
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        yield kind, view[pos + 8:pos + 8 + length]
        if kind == b"IEND":
            return
        pos += 12 + length


_STORED_MAX = 0xFFFF
_ZLIB_HEADER = b"\x78\x01"


def _stored(piece: bytes | memoryview) -> Iterator[bytes | memoryview]:
    """``piece`` as deflate stored blocks (none marked final): a 5-byte header, then up to 65,535 bytes of it as they
    are. No copy is made: the decoder reads the slices of ``piece`` itself."""
    view = memoryview(piece)
    for start in range(0, len(view), _STORED_MAX):
        part = view[start:start + _STORED_MAX]
        yield struct.pack("<BHH", 0, len(part), len(part) ^ 0xFFFF)
        yield part


class _Strip:
    """One strip's decode: a Pillow PNG row decoder ("zip", the one ``PngImagePlugin`` uses) fed a zlib stream of
    stored blocks, that is the filtered rows exactly as they were inflated from the file.

    Why stored blocks and no checksum: the decoder inflates its input itself (it knows no other input), and stored
    blocks cost a copy, not a compression. It stops at its image's last row, before the stream's end and its Adler-32
    would be read, so none is written (computing one cost a tenth of the decode)."""

    def __init__(self, mode: str, rawmode: str, width: int, lines: int) -> None:
        self.image = Image.new(mode, (width, lines))
        self._decoder = Image._getdecoder(mode, "zip", (rawmode,))
        self._decoder.setimage(self.image.im, (0, 0, width, lines))
        self._done = False
        self.feed(_ZLIB_HEADER)

    def feed(self, piece: bytes | memoryview) -> None:
        if self._done:
            raise ValueError("PNG image data holds more bytes than its rows need")
        consumed, error = self._decoder.decode(piece)
        if error < 0:
            raise ValueError(f"PNG image data could not be decoded (Pillow decoder error {error})")
        self._done = consumed < 0

    def rows(self, piece: bytes | memoryview) -> None:
        for part in _stored(piece):
            self.feed(part)

    def finish(self) -> Image.Image:
        if not self._done:
            raise ValueError("PNG image data ended inside a strip")
        self._decoder.cleanup()
        return self.image


def strips(data: bytes, rows: int) -> Iterator[Image.Image]:
    """The image as strips of ``rows`` rows (the last one shorter), in the mode Pillow would open it in (palette and
    all): pasting them one under another gives Pillow's whole decode exactly. Raises ValueError when the image data
    does not hold the rows the header declares, or more (:func:`functions.completeness.png_complete` says so first).

    The IDAT stream is inflated here, a strip's bytes at a time (``max_length``: nothing beyond the strip is held),
    and the filtered rows go to Pillow's own row decoder (:class:`_Strip`), preceded by the previous strip's last row
    unfiltered (filter type 0), which the strip's first row may be filtered against (Up, Average, Paeth)."""
    header = _header(data)
    if header is None or not applicable(data):
        raise ValueError("not a non-interlaced PNG of at most 8 bits per sample")
    width, height, depth, color_type, _ = header
    mode, rawmode = PngImagePlugin._MODES[(depth, color_type)]
    stride = math.ceil(width * _CHANNELS[color_type] * depth / 8)
    palette = next((bytes(body) for kind, body in _chunks(data) if kind == b"PLTE"), None)
    # Rows below 8 bits per pixel are unfiltered as 8-bit grey rows of ``stride`` bytes (1 byte a "pixel", as the
    # filters see them), then unpacked with the format's raw mode; 8-bit rows are decoded as what they are.
    packed = _CHANNELS[color_type] == 1 and depth < 8
    decode_mode, decode_rawmode, decode_width = ("L", "L", stride) if packed else (mode, rawmode, width)
    filters = completeness.PngRows(data)
    inflater = zlib.decompressobj()
    idat = (body for kind, body in _chunks(data) if kind == b"IDAT")
    tail: bytes | memoryview = b""
    previous: bytes | None = None
    produced = 0

    def inflate(wanted: int) -> bytes:
        """Up to ``wanted`` more bytes of the image data; b"" when there are no more. An empty IDAT chunk is legal
        and ends nothing; output zlib still holds after the last chunk is asked for with no input, never cut off."""
        nonlocal tail
        try:
            while not inflater.eof:
                last = False
                while not tail:
                    following = next(idat, None)
                    if following is None:
                        last = True
                        break
                    tail = following
                piece = inflater.decompress(tail, wanted)
                tail = inflater.unconsumed_tail
                if piece or last:
                    return piece
        except zlib.error as exc:
            raise ImageDataError(produced, False, str(exc)) from exc
        return b""

    for top in range(0, height, rows):
        count = min(rows, height - top)
        strip = _Strip(decode_mode, decode_rawmode, decode_width, count + (previous is not None))
        if previous is not None:
            strip.rows(b"\x00" + previous)
        wanted = count * (stride + 1)
        while wanted:
            piece = inflate(wanted)
            if not piece:
                raise ImageDataError(produced, inflater.eof)
            bad_filter = filters.bad_filter(piece, produced)
            if bad_filter:
                raise ImageDataError(produced, inflater.eof, bad_filter=bad_filter)
            strip.rows(piece)
            produced += len(piece)
            wanted -= len(piece)
        decoded = strip.finish()
        lines = decoded.height
        previous = decoded.crop((0, lines - 1, decode_width, lines)).tobytes()
        own = decoded.crop((0, lines - count, decode_width, lines)) if lines > count else decoded
        if packed:
            own = Image.frombytes(mode, (width, count), own.tobytes(), "raw", rawmode, stride, 1)
        if palette is not None and mode == "P":
            own.putpalette(palette, "RGB")
        yield own
    extra = inflate(1)
    if extra or not inflater.eof:
        raise ImageDataError(produced + len(extra), inflater.eof)

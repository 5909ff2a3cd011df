"""Decode a PNG a strip of rows at a time, for the in-process model's picture: memory bounded by the strip, not the image.

Why: Pillow decodes a PNG into one full-size buffer (a 408 KB RGBA PNG of 10240 x 10240 is 400 MiB decoded) and has
no reduced decode for PNG (``draft`` is JPEG's). Custom Vision accepts such a file as it is, so the Prediction API
path never decodes it; the model path must, and either refused it or held 400 MiB for a 224 x 224 input.

How, with Pillow's own decoder and no pixel arithmetic in Python: the image data is inflated as a stream, a strip of
rows at a time. Each strip is wrapped in a small PNG of its own (the same header with the strip's height, its rows
stored uncompressed) whose first row is the previous strip's last row, unfiltered (filter type 0): the strip's first
row may be filtered against it (Up, Average, Paeth). Pillow unfilters the strip exactly as it would have in the whole
image, and its raw bytes give the next strip its previous row. Rows of 1-, 2- and 4-bit images are unfiltered as
8-bit grey rows of the same byte length (the filters work on bytes, one byte per "pixel" below 8 bits), then unpacked
with Pillow's own raw mode for the format.

What it handles: non-interlaced PNGs of 1 to 8 bits per sample (what the app sends unchanged; 16-bit PNGs are
converted, and decoded whole under their own plan). :func:`applicable` says whether a file is one.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Iterator

from PIL import Image, PngImagePlugin

__all__ = ["STRIP_BYTES_PER_PIXEL", "applicable", "strips"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
STRIP_BYTES_PER_PIXEL = 48
"""Memory of one strip per pixel at most (4 bytes a pixel per copy, for RGBA): the inflated rows as they arrive and as
a strip (2 copies, and one more while they are sliced), the rows with their previous row, their stored-zlib copy and
the small PNG built from it (3), Pillow's decode of it, the unpacked strip and its RGB copy (3); the measured peak of
a 6500 x 6500 RGBA PNG's strips (tests/functions/test_fn_memory_budget.py) fits it."""


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


def _chunk(kind: bytes, body: bytes) -> list[bytes]:
    """A chunk as its parts (joined once by the caller: a strip's rows are copied as few times as possible). IDAT's
    CRC is left zero: Pillow's decoder never reads it (it checks the others), and it cost a tenth of the decode."""
    crc = 0 if kind == b"IDAT" else zlib.crc32(body, zlib.crc32(kind))
    return [struct.pack(">I", len(body)), kind, body, struct.pack(">I", crc)]


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


def _inflated_rows(data: bytes, row_bytes: int, rows: int) -> Iterator[bytes]:
    """The IDAT stream inflated ``rows`` filtered rows (``row_bytes`` each, filter byte included) at a time."""
    inflater = zlib.decompressobj()
    pending = b""
    want = row_bytes * rows
    for kind, body in _chunks(data):
        if kind != b"IDAT":
            continue
        tail = bytes(body)
        while tail:
            pending += inflater.decompress(tail, max(1, want - len(pending)))
            tail = inflater.unconsumed_tail
            while len(pending) >= want:
                yield pending[:want]
                pending = pending[want:]
    pending += inflater.flush()
    while pending:
        yield pending[:want]
        pending = pending[want:]


def strips(data: bytes, rows: int) -> Iterator[Image.Image]:
    """The image as strips of ``rows`` rows (the last one shorter), in the mode Pillow would open it in (palette and
    all): pasting them one under another gives Pillow's whole decode exactly. Raises ValueError when the image data
    does not hold the rows the header declares (:func:`functions.completeness.png_complete` says so first)."""
    header = _header(data)
    if header is None or not applicable(data):
        raise ValueError("not a non-interlaced PNG of at most 8 bits per sample")
    width, height, depth, color_type, _ = header
    mode, rawmode = PngImagePlugin._MODES[(depth, color_type)]
    stride = math.ceil(width * _CHANNELS[color_type] * depth / 8)
    palette = next((bytes(body) for kind, body in _chunks(data) if kind == b"PLTE"), None)
    # Rows below 8 bits per pixel are unfiltered as 8-bit grey rows of ``stride`` bytes (1 byte a "pixel", as the
    # filters see them); 8-bit rows as themselves.
    fake_width, fake_type = (stride, 0) if _CHANNELS[color_type] == 1 else (width, color_type)
    previous: bytes | None = None
    done = 0
    for block in _inflated_rows(data, stride + 1, rows):
        count = len(block) // (stride + 1)
        if count == 0 or len(block) % (stride + 1) or done + count > height:
            raise ValueError(f"PNG image data holds {done * (stride + 1) + len(block):,} bytes where its rows "
                             f"need {height * (stride + 1):,}")
        body = (b"\x00" + previous if previous is not None else b"") + block
        lines = count + (previous is not None)
        header = struct.pack(">IIBBBBB", fake_width, lines, 8, fake_type, 0, 0, 0)
        small = b"".join([_SIGNATURE, *_chunk(b"IHDR", header), *_chunk(b"IDAT", zlib.compress(body, 0)),
                          *_chunk(b"IEND", b"")])
        with Image.open(io.BytesIO(small), formats=["PNG"]) as decoded:
            raw = decoded.tobytes()
        del small, body
        previous = raw[-stride:]
        own = raw[stride:] if lines > count else raw
        strip = Image.frombytes(mode, (width, count), own, "raw", rawmode, stride, 1)
        if palette is not None and mode == "P":
            strip.putpalette(palette, "RGB")
        done += count
        yield strip
    if done != height:
        raise ValueError(f"PNG image data holds {done:,} of its {height:,} rows")


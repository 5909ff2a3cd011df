"""Files that are cheap to store and costly to decode (issue 17), built byte by byte: the tests and
bench/bench_decode_cost.py share them.

* :func:`many_scan_jpeg`: a grey progressive JPEG whose AC scan (coefficients 1-63, first pass, all blocks end-of-band
  in a few Huffman-coded EOB runs) is repeated ``scans`` times. libjpeg accepts each repeat without a warning (a first
  pass at Al=0 may be sent again), and each costs a pass over every block of the image.
* the same with ``arithmetic=True`` (SOF10): each scan is its 10-byte header with no data at all; arithmetic decoding
  legally reads zeros at a marker, so every scan still decodes every block.
* :func:`tiff_pages`: a TIFF of ``pages`` one-pixel pages (IFDs), which Pillow counts in O(pages^2).
* :func:`gif_frames`: a GIF of ``frames`` one-pixel frames.
"""

from __future__ import annotations

import io
import math
import struct

from PIL import Image


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


class _BitWriter:
    """JPEG entropy-coded bits, MSB first, with 0xFF byte stuffing and 1-bit padding."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def write(self, value: int, bits: int) -> None:
        for shift in range(bits - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> shift) & 1)
            self.count += 1
            if self.count == 8:
                self._byte(self.acc)
                self.acc, self.count = 0, 0

    def _byte(self, byte: int) -> None:
        self.out.append(byte)
        if byte == 0xFF:
            self.out.append(0)

    def flush(self) -> bytes:
        if self.count:
            self._byte((self.acc << (8 - self.count)) | ((1 << (8 - self.count)) - 1))
            self.acc, self.count = 0, 0
        return bytes(self.out)


def _eob_runs(blocks: int) -> bytes:
    """AC first-pass scan data covering ``blocks`` blocks with EOB runs only (symbol r<<4, r extra bits: runs of
    2^r .. 2^(r+1)-1 blocks). The AC table codes symbol r<<4 as the 4-bit value r."""
    writer = _BitWriter()
    left = blocks
    while left:
        run = min(left, 32767)
        r = run.bit_length() - 1
        writer.write(r, 4)
        writer.write(run - (1 << r), r)
        left -= run
    return writer.flush()


def many_scan_jpeg(size: tuple[int, int], scans: int, *, arithmetic: bool = False) -> bytes:
    """A grey progressive JPEG of ``size`` with one DC scan and ``scans`` identical AC scans (see the module)."""
    width, height = size
    blocks = math.ceil(width / 8) * math.ceil(height / 8)
    parts = [b"\xff\xd8", _segment(0xDB, b"\x00" + bytes([1] * 64))]
    parts.append(_segment(0xCA if arithmetic else 0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"))
    dc_scan = _segment(0xDA, b"\x01\x01\x00\x00\x00\x00")
    ac_scan = _segment(0xDA, b"\x01\x01\x00\x01\x3f\x00")
    if arithmetic:
        parts.append(dc_scan)  # no data: zeros are read, every DC difference decodes as 0
        parts.extend([ac_scan] * scans)
    else:
        # DC table: one symbol (category 0) coded "0"; AC table: EOBr symbols r<<4 (r = 0..14) as 4-bit codes.
        parts.append(_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00"))
        parts.append(_segment(0xC4, b"\x10" + bytes([0, 0, 0, 15] + [0] * 12) + bytes(r << 4 for r in range(15))))
        dc = _BitWriter()
        for _ in range(blocks):
            dc.write(0, 1)
        parts.append(dc_scan + dc.flush())
        parts.extend([ac_scan + _eob_runs(blocks)] * scans)
    parts.append(b"\xff\xd9")
    return b"".join(parts)


def progressive_photo(size: tuple[int, int], *, seed: int = 1) -> bytes:
    """An ordinary progressive colour JPEG (libjpeg's standard script: 10 scans) with some texture."""
    image = Image.effect_noise(size, 40).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85, progressive=True)
    return buffer.getvalue()


def tiff_pages(pages: int, *, loop: bool = False) -> bytes:
    """A little-endian TIFF of ``pages`` 1x1 grey pages sharing one pixel; ``loop``: the last IFD points at the first."""
    entry_count = 8
    ifd_size = 2 + 12 * entry_count + 4
    pixel_at = 8
    first = 10  # header (8) + the pixel, padded to an even offset
    out = bytearray(b"II*\x00" + struct.pack("<I", first) + b"\x80\x00")
    for page in range(pages):
        here = first + page * ifd_size
        following = here + ifd_size if page + 1 < pages else (first if loop else 0)
        entries = [(256, 4, 1, 1), (257, 4, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                   (273, 4, 1, pixel_at), (278, 4, 1, 1), (279, 4, 1, 1)]
        out += struct.pack("<H", entry_count)
        for tag, kind, count, value in entries:
            out += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3
                                                             else struct.pack("<I", value))
        out += struct.pack("<I", following)
    return bytes(out)


def gif_frames(frames: int) -> bytes:
    """A 1x1 GIF89a of ``frames`` frames, each its own image descriptor and two-byte LZW data."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x21\xf9\x04\x00\x01\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + \
        b"\x02\x02\x44\x01\x00"
    return head + frame * frames + b"\x3b"


def _tiff_one_page(width: int, height: int, compression: int, tags: list[tuple[int, int, int, int]],
                   tail: bytes) -> bytes:
    """A little-endian grey 8-bit TIFF of one page: the basic tags, ``tags`` (tag, type, count, value), then
    ``tail`` (arrays and pixel data, whose offsets the caller computed from :func:`_tiff_data_at`)."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, compression),
               (262, 3, 1, 1), (277, 3, 1, 1), *tags]
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed
    return bytes(out + struct.pack("<I", 0) + tail)


def _tiff_data_at(extra_tags: int) -> int:
    return 8 + 2 + 12 * (6 + extra_tags) + 4


def tiff_tiles(size: tuple[int, int], tile: int = 16) -> bytes:
    """An uncompressed grey TIFF in ``tile`` x ``tile`` tiles (all sharing one tile of data): Pillow reads each tile
    as a separate piece of work, in Python."""
    width, height = size
    count = math.ceil(width / tile) * math.ceil(height / tile)
    offsets_at = _tiff_data_at(4)
    counts_at = offsets_at + 4 * count
    data_at = counts_at + 4 * count
    tags = [(322, 3, 1, tile), (323, 3, 1, tile), (324, 4, count, offsets_at), (325, 4, count, counts_at)]
    tail = struct.pack(f"<{count}I", *[data_at] * count) + struct.pack(f"<{count}I", *[tile * tile] * count)
    return _tiff_one_page(width, height, 1, tags, tail + bytes(tile * tile))


def tiff_jpeg(size: tuple[int, int], scans: int) -> bytes:
    """A grey TIFF of one strip, JPEG-compressed (compression 7) with :func:`many_scan_jpeg`'s stream: libtiff
    decodes it with libjpeg, and refuses more than 100 scans itself."""
    width, height = size
    stream = many_scan_jpeg(size, scans)
    data_at = _tiff_data_at(3)
    tags = [(273, 4, 1, data_at), (278, 4, 1, height), (279, 4, 1, len(stream))]
    return _tiff_one_page(width, height, 7, tags, stream)


def gif_comments(extensions: int, sub_blocks: int = 0) -> bytes:
    """A 2-frame 1x1 GIF whose first frame follows ``extensions`` empty comment extensions, or (``sub_blocks``) one
    comment of that many one-byte sub-blocks: Pillow reads each in Python and joins comment sub-blocks with
    ``bytes +=`` (quadratic)."""
    two = gif_frames(2)
    head, frames = two[:19], two[19:]
    comments = b"\x21\xfe\x00" * extensions + (b"\x21\xfe" + b"\x01x" * sub_blocks + b"\x00" if sub_blocks else b"")
    return head + comments + frames

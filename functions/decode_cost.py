"""What decoding an image will cost in CPU, read from its structure before any pixel is decoded (issue 17).

Why: the memory budget (:func:`functions.images.estimate_memory`) bounds what a decode holds, not how long it runs.
A file can be small, whole and warning-free and still cost minutes: a progressive JPEG that sends the same scan
thousands of times makes libjpeg pass over every block once per scan (300 KB of grey 8000x8000 cost 8.8 s of CPU;
with arithmetic coding a scan is 10 bytes and a 1 MB file cost 607 s, past the Function's timeout); a TIFF of
thousands of pages makes Pillow count them in O(pages^2); a PNG of a million empty chunks and an RLE BMP of one-pixel
runs are decoded chunk by chunk and run by run in Python. Each of these costs time in proportion to something the
header or a cheap walk over the file's structure says, so it is refused before it is spent: the caller turns the
message into a ``too_costly_to_decode`` rejection (a quarantine record), never a timeout or a poisoned message.

What is counted, per format (the numbers are :class:`CostLimits`, this rule's one home):

* JPEG (and MPO's first picture): scans, and *block visits*: each scan's entropy decoder visits every 8x8 block of
  each component it carries, so a file costs sum(blocks of the scan's components) over its scans, counted twice for
  arithmetic coding (SOF9-SOF15: each block is a few adaptive binary decisions even when the scan holds no data),
  and 64 times for lossless coding (SOF3, SOF7, SOF11, SOF15: every sample is coded on its own).
  Also segments and stray bytes between them. The walk stops as soon as a limit is passed (a 32 MiB file of
  10-byte scans is not walked to its end).
* TIFF: pages, by following the IFD chain (with loop detection) without reading the entries; GIF: frames, blocks
  and comment bytes, by following each block's sub-blocks. Only the first page or frame is classified; the count
  is for the record (:func:`frame_count`), so Pillow's own counting never runs.
* PNG: chunks (Pillow checks and reads each in Python).
* BMP: RLE-compressed pixel data bytes (Pillow's RLE decoder is Python, about 0.13 us a byte).

Pixels alone are bounded elsewhere (``Limits.max_pixels`` and the memory plan, which also bounds a multi-scan
JPEG's blocks: every coefficient is kept, 128 bytes a block); ``bench/bench_decode_cost.py`` measures the worst file
of each format that these rules accept, and docs/limits.md gives its figures.

Pure functions over bytes: no Pillow, no decoding, no project imports.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass

__all__ = [
    "COST_LIMITS",
    "REASON",
    "CostLimits",
    "GifCost",
    "JpegCost",
    "frame_count",
    "gif_blocks",
    "jpeg_block_visits",
    "sniff",
    "too_costly",
]

REASON = "too_costly_to_decode"
"""The quarantine reason of every refusal here."""

MiB = 1024 * 1024


@dataclass(frozen=True)
class CostLimits:
    """How much decoding one image may cost, in units its structure states (see the module docstring).

    ``max_jpeg_scans``: cameras and encoders write 1 (baseline) to about 10 (libjpeg's progressive script; mozjpeg's
    optimised scripts stay under 20). libjpeg-turbo's own guard against this attack (djpeg ``-maxscans``,
    TurboJPEG's ``TJPARAM_SCANLIMIT``) is off by default; 500 is 25 times what a real file uses.

    ``max_jpeg_segments`` and ``max_jpeg_stray_bytes``: Pillow reads a JPEG's segments before its first scan, and
    bytes between segments (0xFF fill, junk), one at a time in Python (8 MB of empty comment segments took 1.35 s,
    8 MB of fill bytes 1.7 s); the app's own structural check walks every segment of the file in Python. A camera
    file has a few dozen segments (an ICC profile in 64 KB pieces, a table before each progressive scan) and a few
    stray bytes at most.

    ``max_jpeg_block_visits``: the largest multi-scan JPEG the memory plan accepts holds about 1.5 M blocks (every
    coefficient is kept); libjpeg's 10-scan script visits each component's blocks about 5 times, 7 M visits; a
    120 MP 4:4:4 baseline file is one pass, 5.6 M. 24 M leaves three times that and costs about 0.15 s per decode
    here (4-9 ns a visit for a data-less scan); the app decodes a file at most about six times (scan check, picture
    test, conversion, model).

    ``max_multi_scan_data_bytes``: entropy-coded bytes of a JPEG of more than one scan (progressive, or sequential in
    several scans). Each decode costs about 40 ns a byte of such data (every coefficient goes through libjpeg's
    buffer), and the scan check decodes a file up to five times when libjpeg warns and the last block is grey (its
    picture test): 9.8 MB of a progressive photo's data cost 2.3 s that way, 21.6 MB 5.4 s. Cameras write baseline
    (one scan: 31 MB of it cost 1.9 s at worst); a progressive file is a web or editor re-save, a few MB.

    ``arithmetic_weight``: a block in an arithmetic-coded scan costs about 1.5-2 times a Huffman one (measured with
    data-less scans, where Huffman's EOB runs are cheapest); counted as 2.

    ``max_frames``: pages of a TIFF, frames of a GIF. Only the first is classified, but the file must be walked to
    the end to count them (and Pillow's TIFF count is quadratic). 10,000 frames is over three minutes of animation at
    50 frames a second; a scanner's multi-page document has hundreds at most. The walk of 10,000 takes about 10 ms.

    ``max_gif_blocks``, ``max_gif_extension_blocks`` and ``max_gif_comment_bytes``: Pillow reads a GIF's blocks one
    at a time in Python: the image data's sub-blocks in linear time (encoders write 255 bytes each: 131,000 in
    32 MiB), the extensions before the second frame (which it reads to tell an animation) in more than linear time
    (30,000 empty comments took 0.05 s, 100,000 took 0.31 s, a million 29 s), and it joins comment sub-blocks with
    ``bytes +=``, whose cost grows with the square of their number (2 MB of one-byte comment sub-blocks took 31 s).
    A real file has a few extensions per frame and comments of a line or two.

    ``max_png_chunks``: libpng writes 8 KiB image data chunks (4,096 in a 32 MiB file); Pillow spends about 2.5 us
    a chunk to check and again to read them, so 50,000 chunks cost about a quarter of a second.

    ``max_bmp_rle_bytes``: Pillow decodes RLE BMP in Python, about 0.13 us a byte (16 MB of one-pixel runs took
    2.2 s); RLE is for small palette images, 5 MiB is far above any such file and costs about 0.7 s.
    """

    max_jpeg_scans: int = 500
    max_jpeg_segments: int = 5_000
    max_jpeg_stray_bytes: int = 100_000
    max_jpeg_block_visits: int = 24_000_000
    max_multi_scan_data_bytes: int = 6_000_000
    arithmetic_weight: int = 2
    max_frames: int = 10_000
    max_gif_blocks: int = 300_000
    max_gif_extension_blocks: int = 20_000
    max_gif_comment_bytes: int = 10_000
    max_png_chunks: int = 50_000
    max_bmp_rle_bytes: int = 5 * MiB


COST_LIMITS = CostLimits()


_MAGIC = ((b"\xff\xd8", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF8", "GIF"), (b"II*\x00", "TIFF"),
          (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"), (b"BM", "BMP"))


def sniff(data: bytes) -> str | None:
    """The format by its magic number (Pillow's names), or None: this runs before Pillow reads a byte, because
    Pillow's own header parsing is part of the cost (a PNG's chunks before its image data, a JPEG's segments before
    its first scan, read one by one in Python)."""
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)


def too_costly(data: bytes, limits: CostLimits = COST_LIMITS) -> str | None:
    """Why decoding ``data`` would cost more than ``limits`` allow, for a person; None when it would not, or when
    the format is not one walked here, or its structure cannot be walked (the decode's own checks then say why)."""
    fmt = sniff(data)
    if fmt == "JPEG":
        return _jpeg_too_costly(data, limits)
    if fmt == "GIF":
        return _gif_too_costly(data, limits)
    if fmt == "TIFF":
        pages = _tiff_pages(data, limits.max_frames + 1)
        if pages is not None and pages > limits.max_frames:
            return (f"TIFF file has more than {limits.max_frames:,} pages (only the first is classified, and "
                    "counting them costs time in proportion); save the first page on its own")
        return None
    if fmt == "PNG":
        chunks = _png_chunks(data, limits.max_png_chunks + 1)
        if chunks > limits.max_png_chunks:
            return (f"PNG file has more than {limits.max_png_chunks:,} chunks (each is checked and read on its own; "
                    "encoders write a few thousand at most); re-save it with any image editor")
        return None
    if fmt == "BMP":
        rle = _bmp_rle_bytes(data)
        if rle > limits.max_bmp_rle_bytes:
            return (f"BMP file has {rle:,} bytes of RLE-compressed pixels, above the {limits.max_bmp_rle_bytes:,} "
                    "decoded here (RLE is decoded byte by byte); save it as PNG or uncompressed BMP")
    return None


_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_ARITHMETIC_SOF = frozenset({0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_LOSSLESS_SOF = frozenset({0xC3, 0xC7, 0xCB, 0xCF})
_SAMPLES_PER_BLOCK = 64
"""A lossless JPEG (SOF3, libjpeg-turbo 3 decodes it) codes every sample on its own and cannot be decoded at a
reduced scale: each of its samples costs what a block costs, so a block counts 64 times."""
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""0xFF then neither stuffing, a restart marker nor fill: the marker that ends a scan's entropy-coded data."""


_NEXT_MARKER = re.compile(rb"\xff+[^\xff]")
"""The next marker: a run of 0xFF (fill) and the marker's code, found in C whatever junk comes before."""


@dataclass(frozen=True)
class JpegCost:
    """What walking a JPEG's structure found; ``over``: a limit was passed and the walk stopped there."""

    scans: int
    segments: int
    stray_bytes: int
    visits: int
    arithmetic: bool
    over: bool
    scan_data_bytes: int = 0


def jpeg_block_visits(data: bytes, limits: CostLimits = COST_LIMITS) -> JpegCost:
    """Scans, segments, stray bytes and weighted block visits of a JPEG's first image, walking its markers (each
    scan's data and each run of stray bytes skipped by one regular-expression search, in C) up to its end marker or
    until a limit is passed."""
    n = len(data)
    pos, scans, segments, stray, visits, arithmetic, weight, scan_data = 2, 0, 0, 0, 0, False, 1, 0
    blocks: dict[int, int] = {}

    def cost(over: bool) -> JpegCost:
        return JpegCost(scans, segments, stray, visits, arithmetic, over, scan_data)

    while pos + 4 <= n:
        found = _NEXT_MARKER.search(data, pos)
        if found is None:
            break
        stray += found.end() - 2 - pos  # junk and fill before the marker's own 0xFF
        pos = found.end() - 2
        marker = data[pos + 1]
        segments += 1
        if stray > limits.max_jpeg_stray_bytes or segments > limits.max_jpeg_segments:
            return cost(True)
        if marker in (0x00, 0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            break
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > n:
            break  # a cut file: the structural checks say so
        body = data[pos + 4:end]
        if marker in _SOF and len(body) >= 6 and not blocks:
            arithmetic = marker in _ARITHMETIC_SOF
            weight = (limits.arithmetic_weight if arithmetic else 1) * \
                (_SAMPLES_PER_BLOCK if marker in _LOSSLESS_SOF else 1)
            blocks = _component_blocks(body)
        elif marker == 0xDA:
            scans += 1
            count = body[0] if body else 0
            scan_blocks = sum(blocks.get(body[1 + 2 * i], 0) for i in range(count) if 1 + 2 * i < len(body))
            visits += scan_blocks * weight
            if scans > limits.max_jpeg_scans or visits > limits.max_jpeg_block_visits:
                return cost(True)
            found = _SCAN_END.search(data, end)
            scan_data += (found.start() if found else n) - end
            if scans > 1 and scan_data > limits.max_multi_scan_data_bytes:
                return cost(True)
            if found is None:
                break
            pos = found.start()
            continue
        pos = end
    return cost(False)


def _component_blocks(sof: bytes) -> dict[int, int]:
    """Blocks of each component (by id) from a frame header: MCUs x the component's sampling factors."""
    height, width = int.from_bytes(sof[1:3], "big"), int.from_bytes(sof[3:5], "big")
    sampling = {}
    for i in range(sof[5]):
        entry = sof[6 + 3 * i:9 + 3 * i]
        if len(entry) == 3:
            sampling[entry[0]] = (max(1, entry[1] >> 4), max(1, entry[1] & 0x0F))
    if not sampling:
        return {}
    h_max = max(h for h, _ in sampling.values())
    v_max = max(v for _, v in sampling.values())
    mcus_x, mcus_y = math.ceil(width / (8 * h_max)), math.ceil(height / (8 * v_max))
    return {ident: mcus_x * h * mcus_y * v for ident, (h, v) in sampling.items()}


def _jpeg_too_costly(data: bytes, limits: CostLimits) -> str | None:
    cost = jpeg_block_visits(data, limits)
    if not cost.over:
        return None
    coding = "arithmetic-coded " if cost.arithmetic else ""
    if cost.stray_bytes > limits.max_jpeg_stray_bytes or cost.segments > limits.max_jpeg_segments:
        return (f"JPEG has more than {limits.max_jpeg_segments:,} segments or {limits.max_jpeg_stray_bytes:,} "
                "bytes between them (each is read on its own; a camera writes a few dozen): re-save it")
    if cost.scans > 1 and cost.scan_data_bytes > limits.max_multi_scan_data_bytes:
        return (f"{coding}JPEG in {cost.scans:,} or more scans has more than {limits.max_multi_scan_data_bytes:,} "
                "bytes of image data (each byte of a multi-scan JPEG is costly to decode, and the checks decode it "
                "several times); re-save it as baseline JPEG, or at a lower quality")
    if cost.scans > limits.max_jpeg_scans:
        return (f"{coding}JPEG has more than {limits.max_jpeg_scans:,} scans (cameras write at most about 10; each "
                "scan is another pass of the decoder over the image): a CPU bomb, or re-save it as baseline JPEG")
    return (f"{coding}JPEG would take more than {limits.max_jpeg_block_visits:,} block decodes "
            f"({cost.scans:,} scans so far, each a pass over the blocks it carries"
            + (", arithmetic coding counted twice" if cost.arithmetic else "")
            + "): a CPU bomb, or re-save it as baseline JPEG")


def frame_count(data: bytes, fmt: str, limits: CostLimits = COST_LIMITS) -> int | None:
    """Pages of a TIFF or frames of a GIF, counted from the structure up to one past ``limits.max_frames``; None for
    other formats (their readers count cheaply: WebP's demuxer in C, APNG's declared count) or a structure that
    cannot be walked (Pillow then reports the damage)."""
    cap = limits.max_frames + 1
    if fmt == "TIFF":
        return _tiff_pages(data, cap)
    if fmt == "GIF":
        cost = gif_blocks(data, limits)
        return None if cost is None else cost.frames
    return None


def _tiff_pages(data: bytes, cap: int) -> int | None:
    """Follow the IFD chain: count (2 or 8 bytes), entries (12 or 20 bytes each), next offset. A loop ends it."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8:
        return None
    version = struct.unpack(order + "H", data[2:4])[0]
    if version == 42:
        count_fmt, entry, offset_fmt = "H", 12, "I"
        offset = struct.unpack(order + "I", data[4:8])[0]
    elif version == 43 and len(data) >= 16:
        count_fmt, entry, offset_fmt = "Q", 20, "Q"
        offset = struct.unpack(order + "Q", data[8:16])[0]
    else:
        return None
    count_size, offset_size = struct.calcsize(count_fmt), struct.calcsize(offset_fmt)
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < cap:
        if offset + count_size > len(data):
            break
        seen.add(offset)
        entries = struct.unpack_from(order + count_fmt, data, offset)[0]
        following = offset + count_size + entries * entry
        if following + offset_size > len(data):
            break
        offset = struct.unpack_from(order + offset_fmt, data, following)[0]
    return len(seen)


@dataclass(frozen=True)
class GifCost:
    """What walking a GIF's blocks found (stopped early once ``frames`` or ``blocks`` passes its cap)."""

    frames: int
    blocks: int
    extension_blocks: int
    comment_bytes: int


def gif_blocks(data: bytes, limits: CostLimits = COST_LIMITS) -> GifCost | None:
    """Frames, blocks (extensions, image descriptors and every data sub-block) and comment bytes of a GIF: skip
    the colour tables, follow each block's sub-blocks by their lengths. None when it is not a GIF."""
    if len(data) < 13 or data[:3] != b"GIF":
        return None
    pos = 13
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    frames = blocks = extensions = comments = 0
    n = len(data)
    while pos < n and frames <= limits.max_frames and blocks <= limits.max_gif_blocks:
        kind = data[pos]
        blocks += 1
        if kind == 0x3B:
            break
        comment = extension = False
        if kind == 0x21:
            comment = pos + 1 < n and data[pos + 1] == 0xFE
            extension = frames < 2  # Pillow reads these to find the second frame
            extensions += extension
            pos += 2
        elif kind == 0x2C:
            if pos + 10 > n:
                break
            frames += 1
            flags = data[pos + 9]
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 7) + 1)
            pos += 1  # LZW minimum code size
        else:
            break
        while pos < n and data[pos] and blocks <= limits.max_gif_blocks:  # sub-blocks: length, bytes; 0 ends
            blocks += 1
            extensions += extension
            if comment:
                comments += data[pos]
            pos += data[pos] + 1
        if extensions > limits.max_gif_extension_blocks:
            break
        pos += 1
    return GifCost(frames, blocks, extensions, comments)


def _gif_too_costly(data: bytes, limits: CostLimits) -> str | None:
    cost = gif_blocks(data, limits)
    if cost is None:
        return None
    if cost.frames > limits.max_frames:
        return (f"GIF file has more than {limits.max_frames:,} frames (only the first is classified, and counting "
                "them costs time in proportion); save the first frame on its own")
    if (cost.blocks > limits.max_gif_blocks or cost.extension_blocks > limits.max_gif_extension_blocks
            or cost.comment_bytes > limits.max_gif_comment_bytes):
        return (f"GIF file has more than {limits.max_gif_blocks:,} blocks, {limits.max_gif_extension_blocks:,} "
                f"extension blocks before its second frame or {limits.max_gif_comment_bytes:,} bytes of comments "
                "(each is read on its own, comments joined at a cost that grows with their square; an encoder "
                "writes 255-byte blocks and short comments): re-save it")
    return None


def _png_chunks(data: bytes, cap: int) -> int:
    """Chunks up to IEND (or the end of the file, or ``cap``), by their length fields."""
    pos, chunks, n = 8, 0, len(data)
    while pos + 8 <= n and chunks < cap:
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks += 1
        if data[pos + 4:pos + 8] == b"IEND":
            break
        pos += 12 + length
    return chunks


def _bmp_rle_bytes(data: bytes) -> int:
    """Bytes of RLE-compressed pixel data (compression 1: RLE8, 2: RLE4) of a BMP with a Windows info header; 0
    otherwise."""
    if len(data) < 34 or data[:2] != b"BM" or int.from_bytes(data[14:18], "little") < 40:
        return 0
    if int.from_bytes(data[30:34], "little") not in (1, 2):
        return 0
    offset = int.from_bytes(data[10:14], "little")
    return max(0, len(data) - offset)

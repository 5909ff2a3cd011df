"""One decode verdict for every container format (issue 17): a cut file is never accepted as a different picture,
whatever the container and wherever the cut; each format's orientation is applied once; a damaged PNG is a
``corrupt`` record on the API path and on the in-process model path alike; a 12-bit JPEG is unsupported, not
damaged."""

from __future__ import annotations

import io
import os
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from functions import completeness, images
from functions.images import NormalisedImage, Rejection, _model_picture, decode_for_model, normalise
from tests.onnx_exports import build_zip

MODEL_SIDE = 32


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _noise(size: tuple[int, int], seed: int = 7) -> Image.Image:
    """A picture whose every region differs: any missing data shows."""
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * 3)))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, found = 8, []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        found.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return found


def _png_rebuilt(data: bytes, *, idat: bytes, after_idat: list[tuple[bytes, bytes]] = ()) -> bytes:
    """The same PNG with other image data, every CRC right (what a tool that "repairs" a file writes)."""
    head = [c for c in _png_chunks(data) if c[0] not in (b"IDAT", b"IEND")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(k, v) for k, v in head) + _chunk(b"IDAT", idat) + \
        b"".join(_chunk(k, v) for k, v in after_idat) + _chunk(b"IEND", b"")


def _idat(data: bytes) -> bytes:
    return b"".join(body for kind, body in _png_chunks(data) if kind == b"IDAT")


def _mpo(size: tuple[int, int] = (64, 48)) -> bytes:
    first = _noise(size)
    return _save(first, "MPO", save_all=True, append_images=[first.transpose(Image.Transpose.FLIP_LEFT_RIGHT)],
                 quality=90)


def _mpo_offsets(data: bytes) -> list[int]:
    with Image.open(io.BytesIO(data)) as image:
        return list(image._MpoImageFile__mpoffsets)  # where each picture starts, from the MP index


def _picture(result: NormalisedImage | Rejection) -> bytes | None:
    """What would be classified: the decoded pixels of the bytes sent (and the model's picture, when there is one)."""
    if isinstance(result, Rejection):
        return None
    with Image.open(io.BytesIO(result.data)) as image:
        pixels = image.convert("RGB").tobytes()
    return pixels + (result.decoded.tobytes() if result.decoded is not None else b"")


# --- findings -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model_side", [None, MODEL_SIDE])
def test_a_cut_jpeg_as_the_first_picture_of_a_phones_mpo_is_corrupt_as_in_a_plain_jpeg(model_side):
    data = _mpo()
    second = _mpo_offsets(data)[1]
    first = data[:second]
    cut = first[:len(first) * 2 // 3] + b"\xff\xd9"
    plain = _save(_noise((64, 48)), "JPEG", quality=90)
    for damaged in (cut + data[second:], plain[:len(plain) * 2 // 3] + b"\xff\xd9"):
        result = normalise(damaged, model_side=model_side)
        assert isinstance(result, Rejection) and result.reason == "corrupt", result
    assert isinstance(normalise(data, model_side=model_side), NormalisedImage)  # the whole MPO still passes


@pytest.mark.parametrize("model_side", [None, MODEL_SIDE])
def test_a_png_cut_short_and_closed_again_with_iend_is_corrupt_not_black_rows(model_side):
    data = _save(_noise((80, 60)), "PNG")
    closed = _png_rebuilt(data, idat=_idat(data)[:len(_idat(data)) // 2])
    result = normalise(closed, model_side=model_side)
    assert isinstance(result, Rejection) and result.reason == "corrupt", result
    assert "black" in result.message and "re-upload" in result.message


def _bad_deflate_png() -> bytes:
    data = _save(_noise((80, 60)), "PNG")
    idat = bytearray(_idat(data))
    idat[40:80] = bytes(random.Random(3).getrandbits(8) for _ in range(40))
    return _png_rebuilt(data, idat=bytes(idat))


def _unreadable_ztxt_png() -> bytes:
    data = _save(_noise((80, 60)), "PNG")
    return _png_rebuilt(data, idat=_idat(data), after_idat=[(b"zTXt", b"Comment\x00\x07" + os.urandom(40))])


@pytest.mark.parametrize("model_side", [None, MODEL_SIDE])
@pytest.mark.parametrize("make", [_bad_deflate_png, _unreadable_ztxt_png], ids=["bad-deflate", "ztxt-after-idat"])
def test_a_png_that_passes_its_crcs_but_fails_to_inflate_is_corrupt(make, model_side):
    result = normalise(make(), model_side=model_side)
    assert isinstance(result, Rejection) and result.reason == "corrupt", result


@pytest.mark.parametrize("make", [_bad_deflate_png, _unreadable_ztxt_png], ids=["bad-deflate", "ztxt-after-idat"])
def test_with_an_in_process_model_a_png_that_fails_to_inflate_gets_a_corrupt_record_not_a_poisoned_message(
        make, function_env, tmp_path):
    """Before: validation passed it on its CRCs and the model runner's decode raised, on each of five attempts."""
    (tmp_path / "model.zip").write_bytes(build_zip(size=11))
    function_env.set(CVOPS_MODEL=str(tmp_path / "model.zip"), VISION_PREDICTION_ENDPOINT="http://127.0.0.1:9/",
                     VISION_PROJECT_ID="", VISION_PUBLISH_NAME="")
    function_env.upload("cams/damaged.png", make())
    record = function_env.deliver("cams/damaged.png").record
    assert (record["outcome"], record["reasons"][0]["code"]) == ("quarantine", "corrupt"), record
    assert record["predictions"] is None and function_env.names("accepted") == []
    assert function_env.names("quarantine")[0] == "cams/damaged.png"


def test_a_valid_12_bit_jpeg_is_an_unsupported_format_not_a_corrupt_file():
    baseline = _save(_noise((64, 48)), "JPEG")
    at = baseline.index(b"\xff\xc0")  # the frame header: SOF1 (extended), precision 12, all else as it was
    twelve_bit = baseline[:at] + b"\xff\xc1" + baseline[at + 2:at + 4] + b"\x0c" + baseline[at + 5:]
    result = normalise(twelve_bit)
    assert isinstance(result, Rejection) and result.reason == "unsupported_format", result
    assert "12-bit" in result.message and "8-bit" in result.message
    assert completeness.unsupported_jpeg(baseline) is None


# --- orientation --------------------------------------------------------------------------------------------

_UPRIGHT_COLOURS = ((230, 20, 20), (20, 200, 20), (20, 20, 230), (230, 230, 20))  # TL, TR, BL, BR
_UNDO = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
         4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
         7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
"""How a camera stores an upright picture under each EXIF orientation (the inverse of what a viewer applies)."""


def _upright() -> Image.Image:
    image = Image.new("RGB", (64, 32))
    for index, colour in enumerate(_UPRIGHT_COLOURS):
        x, y = (index % 2) * 32, (index // 2) * 16
        image.paste(colour, (x, y, x + 32, y + 16))
    return image


def _oriented(fmt: str, orientation: int) -> bytes:
    stored = _upright() if _UNDO[orientation] is None else _upright().transpose(_UNDO[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}, "TIFF": {}, "PNG": {},
               "MPO": {"quality": 95, "subsampling": 0, "save_all": True, "append_images": [stored]}}[fmt]
    return _save(stored, fmt, exif=exif.tobytes(), **options)


def _quadrants(image: Image.Image) -> list[tuple[int, ...]]:
    rgb = image.convert("RGB")
    return [rgb.getpixel((int(rgb.width * fx), int(rgb.height * fy))) for fy in (0.25, 0.75) for fx in (0.25, 0.75)]


def _close(found: list[tuple[int, ...]]) -> bool:
    return all(max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 24
               for got, want in zip(found, _UPRIGHT_COLOURS, strict=True))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "PNG", "WEBP", "MPO"])
def test_each_exif_orientation_is_applied_exactly_once_in_every_format(fmt, orientation):
    """Pillow 12 turns a TIFF itself when it loads it; the app turned it again (orientations 2-8 came out wrong).
    A PNG's orientation is in its eXIf chunk; a phone's MPO carries its first picture's EXIF, as a JPEG does."""
    data = _oriented(fmt, orientation)
    result = normalise(data, model_side=MODEL_SIDE)
    assert isinstance(result, NormalisedImage), result
    with Image.open(io.BytesIO(result.data)) as sent:
        assert sent.size == (64, 32) and _close(_quadrants(sent)), (fmt, orientation, _quadrants(sent))
    assert _close(_quadrants(result.decoded)), (fmt, orientation, "model picture", _quadrants(result.decoded))


# --- every container x cut point ----------------------------------------------------------------------------

def _originals() -> dict[str, bytes]:
    picture = _noise((40, 30), seed=11)
    return {
        "JPEG": _save(picture, "JPEG", quality=90),
        "MPO": _mpo((40, 30)),
        "PNG": _save(picture, "PNG"),
        "GIF": _save(picture.convert("P"), "GIF"),
        "BMP": _save(picture, "BMP"),
        "TIFF": _save(picture, "TIFF"),
        "WEBP": _save(picture, "WEBP", lossless=True),
    }


ORIGINALS = _originals()


def _closed(fmt: str, data: bytes, cut: int) -> bytes:
    """The first ``cut`` bytes, "closed again" as a repairing tool would: the format's end marker appended (with a
    PNG's image data re-chunked so every CRC holds, a WebP's RIFF size rewritten)."""
    head = data[:cut]
    if fmt == "JPEG":
        return head + b"\xff\xd9"
    if fmt == "MPO":
        return head + b"\xff\xd9"
    if fmt == "PNG":
        idat_start = data.index(b"IDAT") + 4
        kept = _idat(data)[:max(0, cut - idat_start)]
        return _png_rebuilt(data, idat=kept) if cut > idat_start else head + _chunk(b"IEND", b"")
    if fmt == "GIF":
        return _gif_closed(data, cut)
    if fmt == "WEBP" and cut >= 8:
        return head[:4] + struct.pack("<I", cut - 8) + head[8:]
    return head  # BMP, TIFF: no end marker to append


def _gif_closed(data: bytes, cut: int) -> bytes:
    """A GIF cut inside its image data and closed properly: the sub-block the cut falls in shortened to what is left,
    then the block terminator and the trailer (any LZW decoder reads it to the end without an error)."""
    descriptor = data.index(b"\x2c", 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 13))
    pos = descriptor + 10 + (3 << ((data[descriptor + 9] & 7) + 1) if data[descriptor + 9] & 0x80 else 0) + 1
    while data[pos] and pos + 1 + data[pos] < cut:
        pos += 1 + data[pos]
    if cut <= pos or not data[pos]:
        return data[:cut] + b"\x00\x3b"
    return data[:pos] + bytes([cut - pos - 1]) + data[pos + 1:cut] + b"\x00\x3b"


def _same_or_refused(fmt: str, damaged: bytes, model_side: int | None) -> None:
    result = normalise(damaged, model_side=model_side)
    if isinstance(result, Rejection):
        assert result.reason in ("corrupt", "truncated", "not_an_image"), result
        return
    expected = _picture(normalise(ORIGINALS[fmt], model_side=model_side))
    assert _picture(result) == expected, f"{fmt} cut to {len(damaged)} bytes accepted as a different picture"


def test_a_jpeg_cut_inside_its_frame_header_is_damaged_not_an_unsupported_variant():
    """Found by the generated cut test in CI: a cut inside the SOF segment, closed with an end marker, left a byte
    after the cut where the sample precision is read (217 bits), and the file was called ``unsupported_format``."""
    data = ORIGINALS["JPEG"]
    sof = next(data.index(bytes([0xFF, m])) for m in (0xC0, 0xC2) if bytes([0xFF, m]) in data)
    for cut in range(sof + 2, sof + 12):
        for damaged in (data[:cut], _closed("JPEG", data, cut)):
            result = normalise(damaged)
            assert isinstance(result, Rejection) and result.reason != "unsupported_format", (cut, result)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.floats(0.0, 1.0), closed=st.booleans(), model=st.booleans())
@pytest.mark.parametrize("fmt", sorted(ORIGINALS))
def test_a_file_cut_at_any_point_is_refused_or_decodes_to_the_same_picture(fmt, where, closed, model):
    data = ORIGINALS[fmt]
    cut = 1 + round(where * (len(data) - 2))
    damaged = _closed(fmt, data, cut) if closed else data[:cut]
    _same_or_refused(fmt, damaged, MODEL_SIDE if model else None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.floats(0.0, 1.0), model=st.booleans())
def test_an_mpo_whose_first_pictures_data_is_cut_and_closed_before_the_second_is_refused(where, model):
    """The phone's damaged MPO: the first picture's image data stops, an end marker follows, then the other pictures
    (a cut inside the first picture's header segments is not covered: its segment lengths then swallow the next
    picture's header, and what decodes is a JPEG of its own)."""
    data = ORIGINALS["MPO"]
    second = _mpo_offsets(data)[1]
    first_scan = data.index(b"\xff\xda")
    first_scan += 2 + int.from_bytes(data[first_scan + 2:first_scan + 4], "big")
    end = data.rindex(b"\xff\xd9", 0, second)
    cut = first_scan + round(where * (end - first_scan - 1))
    _same_or_refused("MPO", data[:cut] + b"\xff\xd9" + data[second:], MODEL_SIDE if model else None)


@pytest.mark.parametrize("fmt", sorted(ORIGINALS))
def test_a_file_cut_in_its_last_bytes_is_refused_or_decodes_to_the_same_picture(fmt):
    """The cuts a random draw rarely hits: inside the last few bytes, where only an end marker or a checksum is."""
    data = ORIGINALS[fmt]
    for cut in range(max(1, len(data) - 24), len(data)):
        for damaged in (data[:cut], _closed(fmt, data, cut)):
            _same_or_refused(fmt, damaged, None)


# --- the model's picture ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "1", "LA"])
def test_the_strip_by_strip_model_picture_equals_a_whole_image_resize(mode, monkeypatch):
    """The model path no longer holds full-size copies, and feeds the model exactly what it fed before."""
    image = _noise((523, 371)).convert(mode)
    expected = image.convert("RGB").resize((MODEL_SIDE * 7, MODEL_SIDE * 7), Image.Resampling.BICUBIC)
    monkeypatch.setattr(images, "_STRIP_PIXELS", 523 * 50)  # many strips, one short at the end
    assert _model_picture(image, MODEL_SIDE * 7).tobytes() == expected.tobytes()
    png = _save(image, "PNG")
    assert decode_for_model(png, MODEL_SIDE * 7).tobytes() == expected.tobytes()


def _paeth(left: int, up: int, corner: int) -> int:
    estimate = left + up - corner
    near = min((abs(estimate - left), 0), (abs(estimate - up), 1), (abs(estimate - corner), 2))[1]
    return (left, up, corner)[near]


def _filtered_png(size: tuple[int, int], depth: int, color_type: int, seed: int) -> bytes:
    """A PNG whose rows cycle through all five filter types (None, Sub, Up, Average, Paeth), from random samples."""
    width, height = size
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    stride = -(-width * channels * depth // 8)
    bpp = max(1, channels * depth // 8)
    rng = random.Random(seed)
    rows = [bytes(rng.getrandbits(8) for _ in range(stride)) for _ in range(height)]
    previous = bytes(stride)
    out = b""
    for index, row in enumerate(rows):
        kind = index % 5
        encoded = bytearray()
        for x, value in enumerate(row):
            left = row[x - bpp] if x >= bpp else 0
            up, corner = previous[x], previous[x - bpp] if x >= bpp else 0
            predictor = (0, left, up, (left + up) // 2, _paeth(left, up, corner))[kind]
            encoded.append((value - predictor) % 256)
        out += bytes([kind]) + bytes(encoded)
        previous = row
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    palette = _chunk(b"PLTE", bytes(rng.getrandbits(8) for _ in range(3 * 256))) if color_type == 3 else b""
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + palette + _chunk(b"IDAT", zlib.compress(out)) + \
        _chunk(b"IEND", b"")


@pytest.mark.parametrize(("depth", "color_type"), [(8, 2), (8, 6), (8, 0), (8, 4), (8, 3), (4, 3), (2, 0), (1, 0),
                                                    (4, 0), (1, 3)])
def test_a_png_decoded_strip_by_strip_gives_pillows_whole_decode_exactly(depth, color_type, monkeypatch):
    """The model path decodes a large PNG a few rows at a time (functions/png_strips.py): every filter type, every
    bit depth up to 8, strips that end mid-way through the image."""
    from functions import png_strips

    data = _filtered_png((37, 23), depth, color_type, seed=depth * 10 + color_type)
    with Image.open(io.BytesIO(data)) as whole:
        whole.load()
        assembled = Image.new(whole.mode, whole.size)
        top = 0
        for strip in png_strips.strips(data, rows=4):
            assembled.paste(strip, (0, top))
            top += strip.height
        assert top == 23 and assembled.tobytes() == whole.tobytes()
        expected = whole.convert("RGB").resize((16, 16), Image.Resampling.BICUBIC).tobytes()
    monkeypatch.setattr(images, "_STRIP_PIXELS", 37 * 4)
    assert normalise(data, model_side=16).decoded.tobytes() == expected


def _idat_split(data: bytes, sizes: list[int]) -> bytes:
    """The same PNG with its image data in IDAT chunks of ``sizes`` bytes (then one for the rest)."""
    idat, parts = _idat(data), []
    for size in sizes:
        parts.append(idat[:size])
        idat = idat[size:]
    head = [c for c in _png_chunks(data) if c[0] not in (b"IDAT", b"IEND")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(k, v) for k, v in head) + \
        b"".join(_chunk(b"IDAT", part) for part in [*parts, idat] if part) + _chunk(b"IEND", b"")


def test_rows_longer_than_a_stored_block_and_data_split_anywhere_still_decode_by_strips_exactly():
    """The strip decoder feeds Pillow's row decoder stored blocks of at most 65,535 bytes: a 22,000-pixel RGB row is
    66,001 bytes, so every row spans two; the image data comes in chunks of 1, 2 and 7 bytes (inside the zlib header)
    and then large ones, so strips end in the middle of a chunk."""
    from functions import png_strips

    data = _idat_split(_filtered_png((22000, 7), 8, 2, seed=11), [1, 2, 7, 40000, 90001])
    with Image.open(io.BytesIO(data)) as whole:
        whole.load()
        for rows in (1, 3, 7):
            assembled = Image.new(whole.mode, whole.size)
            top = 0
            for strip in png_strips.strips(data, rows=rows):
                assembled.paste(strip, (0, top))
                top += strip.height
            assert top == 7 and assembled.tobytes() == whole.tobytes(), rows


def test_empty_idat_chunks_end_nothing_on_the_model_path():
    """A zero-length IDAT chunk is legal (Pillow and the file check read past it): the strip decode took it for the
    end of the image data and called a whole file ``corrupt`` on the model path only."""
    data = _filtered_png((40, 30), 8, 2, seed=3)
    idat = _idat(data)
    head = [c for c in _png_chunks(data) if c[0] not in (b"IDAT", b"IEND")]
    split = b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(k, v) for k, v in head) + b"".join(
        _chunk(b"IDAT", part) for part in (b"", idat[:100], b"", b"", idat[100:], b"")) + _chunk(b"IEND", b"")
    with Image.open(io.BytesIO(split)) as whole:
        whole.load()
        expected = whole.convert("RGB").resize((16, 16), Image.Resampling.BICUBIC).tobytes()
    assert isinstance(normalise(split), NormalisedImage)
    model = normalise(split, model_side=16)
    assert isinstance(model, NormalisedImage), model
    assert model.decoded.tobytes() == expected


def test_the_model_path_inflates_a_pngs_image_data_once_and_the_api_path_checks_it(monkeypatch):
    """The strip decode's own inflate is the completeness verdict on the model path (it cost 0.37 s a second time for
    a 10240 x 10240 RGBA PNG); the Prediction API path, which decodes nothing, still inflates it to check it."""
    data = _filtered_png((64, 40), 8, 6, seed=5)
    with Image.open(io.BytesIO(data)) as whole:
        expected = whole.convert("RGB").resize((16, 16), Image.Resampling.BICUBIC).tobytes()
    calls = []
    real = completeness._inflates_whole
    monkeypatch.setattr(completeness, "_inflates_whole",
                        lambda chunks, limit, *rest: calls.append(limit) or real(chunks, limit, *rest))
    model = normalise(data, model_side=16)
    assert isinstance(model, NormalisedImage) and calls == []
    assert model.decoded.tobytes() == expected
    assert isinstance(normalise(data), NormalisedImage) and calls == [completeness.png_expected_size(data)]


def _png_raw(size: tuple[int, int], rows: int) -> tuple[bytes, bytes]:
    """A 3-channel PNG header of ``size`` and ``rows`` rows of filtered data (filter None, random samples)."""
    width, height = size
    rng = random.Random(rows)
    raw = b"".join(b"\x00" + bytes(rng.getrandbits(8) for _ in range(width * 3)) for _ in range(rows))
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return head, raw


def _damaged_png(damage: str) -> bytes:
    end = _chunk(b"IEND", b"")
    if damage == "extra-rows":
        head, raw = _png_raw((50, 30), 33)
        return head + _chunk(b"IDAT", zlib.compress(raw)) + end
    if damage == "no-stream-end":  # every row there, the zlib stream never closed (no final block, no checksum)
        head, raw = _png_raw((50, 30), 30)
        packer = zlib.compressobj()
        return head + _chunk(b"IDAT", packer.compress(raw) + packer.flush(zlib.Z_SYNC_FLUSH)) + end
    if damage == "cut-closed":
        head, raw = _png_raw((50, 30), 30)
        return head + _chunk(b"IDAT", zlib.compress(raw)[:900]) + end
    if damage in ("filter-type-7", "interlaced-filter-type-9"):  # a row whose filter byte PNG does not define
        interlaced = damage.startswith("interlaced")
        width, height = 50, 30
        rows = [bytes(1 + width * 3) for _ in range(height + (55 if interlaced else 0))]
        rows[17] = bytes([9 if interlaced else 7]) + rows[17][1:]
        head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, interlaced))
        if interlaced:  # Adam7 rows are shorter: recompute the data from the pass sizes, all zero but one filter byte
            rows, count = [], 0
            for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                                   (0, 1, 1, 2)):
                pass_width, pass_height = -(-(width - x0) // dx), -(-(height - y0) // dy)
                for _ in range(pass_height):
                    rows.append(bytes([9 if count == 17 else 0]) + bytes(pass_width * 3))
                    count += 1
        return head + _chunk(b"IDAT", zlib.compress(b"".join(rows))) + end
    if damage == "cut-unclosed":
        head, raw = _png_raw((50, 30), 30)
        return head + _chunk(b"IDAT", zlib.compress(raw)[:900])
    return _bad_deflate_png()


@pytest.mark.parametrize("damage", ["extra-rows", "no-stream-end", "cut-closed", "cut-unclosed", "bad-deflate",
                                    "filter-type-7", "interlaced-filter-type-9"])
def test_a_damaged_pngs_verdict_is_word_for_word_the_same_on_both_paths(damage):
    """The model path counts the image data in its strip decode, the API path in the file check: one verdict."""
    data = _damaged_png(damage)
    api, model = normalise(data), normalise(data, model_side=MODEL_SIDE)
    assert isinstance(api, Rejection) and api.reason in ("corrupt", "truncated"), api
    assert model == api
    if "filter-type" in damage:  # Pillow's decoder refuses the file: no verdict may let it through to be decoded
        assert "row 17 of its image data has filter type" in api.message
        with pytest.raises(OSError), Image.open(io.BytesIO(data)) as image:
            image.load()

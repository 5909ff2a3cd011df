"""Validation and normalisation of incoming images: one test per kind of file an operator receives."""

from __future__ import annotations

import io
import random

import function_samples as samples
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from functions import images
from functions.images import Limits, NormalisedImage, Rejection, decode_for_model, memory_plan, model_decode_size, normalise


def opened(result: NormalisedImage) -> Image.Image:
    return Image.open(io.BytesIO(result.data))


def test_a_valid_jpeg_is_passed_through_byte_for_byte():
    data = samples.photo()
    result = normalise(data)
    assert isinstance(result, NormalisedImage)
    assert result.unchanged and result.data is data
    assert (result.format, result.width, result.height) == ("JPEG", 320, 240)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "GIF"])
def test_other_accepted_formats_pass_through(fmt):
    data = samples.photo(fmt=fmt)
    result = normalise(data)
    assert isinstance(result, NormalisedImage) and result.unchanged and result.format == fmt


def test_an_empty_blob_is_rejected_as_empty():
    result = normalise(b"")
    assert isinstance(result, Rejection) and result.reason == "empty"


def test_a_text_file_named_jpg_is_not_an_image():
    result = normalise(b"This is a text file that was saved with a .jpg extension.\n")
    assert isinstance(result, Rejection) and result.reason == "not_an_image"
    assert "text" in result.message


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_truncated_jpeg_is_rejected_as_truncated(keep):
    result = normalise(samples.truncated(samples.noisy_jpeg((400, 300)), keep))
    assert isinstance(result, Rejection) and result.reason == "truncated", result


def test_a_truncated_png_is_rejected():
    result = normalise(samples.truncated(samples.photo(fmt="PNG"), 0.5))
    assert isinstance(result, Rejection) and result.reason in ("truncated", "corrupt")


def test_a_format_pillow_knows_but_custom_vision_does_not_is_unsupported_and_named():
    result = normalise(samples.ico())
    assert isinstance(result, Rejection) and result.reason == "unsupported_format"
    assert "ICO" in result.message


@pytest.mark.parametrize("make, fmt", [(samples.tiff, "TIFF"), (samples.webp, "WEBP")])
def test_tiff_and_webp_are_converted_for_prediction(make, fmt):
    result = normalise(make())
    assert isinstance(result, NormalisedImage)
    assert result.original_format == fmt and result.format in ("JPEG", "PNG")
    assert any(fmt in change for change in result.changes)
    assert opened(result).size == (100, 80)


def test_a_decompression_bomb_is_rejected_before_it_is_decoded():
    data = samples.png_bomb(40_000)
    assert len(data) < 200_000
    result = normalise(data)
    assert isinstance(result, Rejection) and result.reason == "decompression_bomb"


def test_the_pixel_limit_is_ours_not_pillows():
    result = normalise(samples.wide_png((2000, 1000)), Limits(max_pixels=1_000_000))
    assert isinstance(result, Rejection) and result.reason == "decompression_bomb"
    assert "2000x1000" in result.message


def test_an_image_longer_than_10240_px_is_downscaled_and_the_original_size_recorded():
    result = normalise(samples.wide_png((12_000, 600)))
    assert isinstance(result, NormalisedImage)
    assert (result.width, result.height) == (10_240, 512)
    assert (result.original_width, result.original_height) == (12_000, 600)
    assert any("downscaled" in change for change in result.changes)


def test_a_big_jpeg_is_downscaled_through_a_reduced_decode():
    data = samples.encode(Image.new("RGB", (10_400, 2_000), (30, 60, 90)), "JPEG", quality=80)
    result = normalise(data)
    assert isinstance(result, NormalisedImage) and result.format == "JPEG"
    assert max(result.width, result.height) <= 10_240


def test_an_aspect_ratio_above_25_to_1_is_rejected():
    result = normalise(samples.wide_png((2600, 100)))
    assert isinstance(result, Rejection) and result.reason == "bad_aspect_ratio"


def test_an_image_over_4_mb_is_recompressed_under_the_limit():
    data = samples.noisy_jpeg((1000, 800), quality=100)
    limits = Limits(max_bytes=len(data) // 2)
    result = normalise(data, limits)
    assert isinstance(result, NormalisedImage)
    assert len(result.data) <= limits.max_bytes
    assert result.original_bytes == len(data)


def test_when_the_byte_limit_cannot_be_reached_the_image_is_rejected_as_too_large():
    data = samples.noisy_jpeg((800, 600), quality=95)
    result = normalise(data, Limits(max_bytes=2_000))
    assert isinstance(result, Rejection) and result.reason == "too_large"
    assert "2,000" in result.message


def test_cmyk_is_converted_to_rgb():
    result = normalise(samples.cmyk_jpeg())
    assert isinstance(result, NormalisedImage)
    assert opened(result).mode == "RGB"
    assert any("CMYK" in change for change in result.changes)


def test_16_bit_grey_png_is_reduced_to_8_bit_keeping_the_tones():
    result = normalise(samples.png_16_bit_grey())
    assert isinstance(result, NormalisedImage)
    image = opened(result)
    assert image.mode == "L"
    low, high = image.getextrema()
    assert low < 10 and high > 245  # the gradient survives, not clipped to white


def test_48_bit_rgb_png_is_re_encoded_as_8_bit():
    result = normalise(samples.png_48_bit_rgb())
    assert isinstance(result, NormalisedImage)
    assert result.data[24] == 8  # IHDR bit depth of the new PNG
    assert any("16-bit" in change for change in result.changes)


def test_an_animated_gif_keeps_its_first_frame():
    result = normalise(samples.animated_gif(frames=4))
    assert isinstance(result, NormalisedImage)
    assert not getattr(opened(result), "is_animated", False)
    assert any("4 frames" in change for change in result.changes)


def test_exif_rotation_is_applied_so_the_model_sees_the_picture_upright():
    result = normalise(samples.exif_rotated_jpeg(orientation=6, size=(300, 200)))
    assert isinstance(result, NormalisedImage)
    assert (result.width, result.height) == (200, 300)
    assert opened(result).getexif().get(0x0112) in (None, 1)
    assert any("EXIF orientation 6" in change for change in result.changes)


def test_a_jpeg_with_bytes_after_its_end_marker_is_still_checked_and_accepted():
    data = samples.photo() + b"motion-photo trailer" * 10
    result = normalise(data)
    assert isinstance(result, NormalisedImage) and result.unchanged



# Issue 9, part 2, defect 6: damaged files get the reason that says what they are.

def _png_chunk_offset(data: bytes, kind: bytes) -> tuple[int, int]:
    """Offset of a chunk's data and its length."""
    at = data.index(kind)
    return at + 4, int.from_bytes(data[at - 4:at], "big")


def test_a_truncated_jpeg_with_an_end_marker_appended_is_corrupt_not_accepted_as_grey():
    for keep in (0.3, 0.6, 0.9):
        data = samples.truncated(samples.noisy_jpeg((400, 300)), keep) + b"\xff\xd9"
        result = normalise(data)
        assert isinstance(result, Rejection) and result.reason == "corrupt", (keep, result)
        assert "end marker" in result.message


def test_a_deferred_scan_check_gives_the_inline_answer_for_cut_and_whole_jpegs():
    cut = samples.truncated(samples.noisy_jpeg((400, 300)), 0.6) + b"\xff\xd9"
    deferred = normalise(cut, defer_scan_check=True)
    assert isinstance(deferred, NormalisedImage) and deferred.pending_check is not None  # not run yet
    assert deferred.pending_check() == normalise(cut)  # the same rejection, when run
    whole = normalise(samples.photo((640, 480)), defer_scan_check=True)
    assert whole.pending_check is not None and whole.pending_check() is None
    assert normalise(samples.photo((640, 480))).pending_check is None  # inline by default: nothing left to run


def test_a_truncated_photo_with_an_end_marker_and_a_trailer_is_corrupt():
    data = samples.truncated(samples.photo((640, 480)), 0.5) + b"\xff\xd9" + b"motion-photo trailer" * 10
    result = normalise(data)
    assert isinstance(result, Rejection) and result.reason == "corrupt", result


def test_a_progressive_jpeg_missing_its_last_scans_is_truncated():
    progressive = samples.encode(Image.open(io.BytesIO(samples.noisy_jpeg((400, 300)))), "JPEG", progressive=True)
    last_scan = progressive.rindex(b"\xff\xda")
    result = normalise(progressive[:last_scan] + b"\xff\xd9")
    assert isinstance(result, Rejection) and result.reason == "truncated", result


def test_complete_jpegs_of_every_kind_still_pass_the_scan_check():
    base = Image.open(io.BytesIO(samples.noisy_jpeg((400, 300))))
    for data in (samples.encode(base, "JPEG", progressive=True), samples.encode(base, "JPEG", restart_marker_blocks=4),
                 samples.encode(Image.new("RGB", (640, 480), (128, 128, 128)), "JPEG"),
                 samples.encode(Image.new("L", (64, 64), 128), "JPEG"), samples.cmyk_jpeg()):
        result = normalise(data)
        assert isinstance(result, NormalisedImage), result


def test_a_png_with_a_bad_crc_in_its_image_data_is_corrupt():
    data = bytearray(samples.photo(fmt="PNG"))
    start, length = _png_chunk_offset(bytes(data), b"IDAT")
    data[start + length] ^= 0xFF  # first byte of the IDAT chunk's CRC
    result = normalise(bytes(data))
    assert isinstance(result, Rejection) and result.reason == "corrupt", result
    assert "checksum" in result.message


def test_a_png_with_a_bad_header_crc_is_corrupt_not_not_an_image():
    data = bytearray(samples.photo(fmt="PNG"))
    data[29] ^= 0xFF  # IHDR's CRC (8-byte signature, 8-byte chunk head, 13-byte body)
    result = normalise(bytes(data))
    assert isinstance(result, Rejection) and result.reason == "corrupt", result
    assert "PNG" in result.message


@pytest.mark.parametrize("brands", [b"heic\x00\x00\x00\x00mif1heic", b"mif1\x00\x00\x00\x00mif1miaf"])
def test_a_heic_photo_is_an_unsupported_format_not_not_an_image(brands):
    ftyp = (8 + len(brands)).to_bytes(4, "big") + b"ftyp" + brands
    data = ftyp + b"\x00\x00\x00\x18meta" + bytes(2000)
    result = normalise(data)
    assert isinstance(result, Rejection) and result.reason == "unsupported_format", result
    assert "HEI" in result.message and "JPEG" in result.message


def test_an_upload_over_the_input_limit_is_refused_before_it_is_parsed():
    data = samples.photo() + bytes(2_000_000)
    result = normalise(data, Limits(max_input_bytes=1_000_000))
    assert isinstance(result, Rejection) and result.reason == "too_large", result
    assert "1,000,000" in result.message


# Generated cases: a cut anywhere in a JPEG's data, with an end marker appended, is never taken for a whole image;
# whole JPEGs of any size, quality, subsampling and scan layout always are.

_JPEG_KINDS = st.tuples(st.integers(16, 300), st.integers(16, 300), st.sampled_from([50, 75, 95]),
                        st.sampled_from([0, 1, 2]), st.booleans())


def _jpeg(kind: tuple[int, int, int, int, bool], seed: int) -> bytes:
    """Noise at a quarter of full swing: busy data in every block, yet small enough for Pillow's progressive encoder
    (full-swing noise outgrows its buffer: "Suspension not allowed here")."""
    width, height, quality, subsampling, progressive = kind
    noise = Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))
    noise = noise.point(lambda v: v // 4 + 96)
    return samples.encode(noise, "JPEG", quality=quality, subsampling=subsampling, progressive=progressive)


@settings(max_examples=60, deadline=None)
@given(kind=_JPEG_KINDS, seed=st.integers(0, 2**16), cut=st.floats(0.05, 0.995))
def test_no_cut_jpeg_with_an_end_marker_appended_passes_as_whole(kind, seed, cut):
    data = _jpeg(kind, seed)
    header_end = data.index(b"\xff\xda")
    at = header_end + 12 + int((len(data) - header_end - 14) * cut)
    result = normalise(data[:at] + b"\xff\xd9")
    if isinstance(result, NormalisedImage):
        # Only the picture test could let one pass (libjpeg's strict decode catches every cut of these YCbCr files;
        # the picture test decides after another warning): its documented limit is a cut after every block's DC
        # value, i.e. inside a progressive file's last scan, or inside the last MCU's AC coefficients, where the
        # picture differs from the whole one in its last 16 x 16 pixels only.
        if kind[4]:
            assert data.rfind(b"\xff\xda") < at, (kind, cut, result)
        else:
            whole, cut_image = Image.open(io.BytesIO(data)).convert("RGB"), opened(result).convert("RGB")
            width, height = whole.size
            for box in ((0, 0, width, max(0, height - 24)), (0, 0, max(0, width - 24), height)):
                if box[2] and box[3]:
                    assert whole.crop(box).tobytes() == cut_image.crop(box).tobytes(), (kind, cut)
    else:
        assert result.reason in ("corrupt", "truncated"), result


def _picture_test_jpeg(kind: tuple[int, int, int, int, bool], seed: int, cmyk: bool) -> bytes:
    """A sequential JPEG that libjpeg's strict decode cannot decide, so the picture test does: CMYK (TurboJPEG does
    not decode it), or YCbCr with stray bytes before its scan (a warning that is not a cut)."""
    data = _jpeg(kind, seed)
    if cmyk:
        return samples.encode(Image.open(io.BytesIO(data)).convert("CMYK"), "JPEG", quality=kind[2])
    scan = data.index(b"\xff\xda")
    return data[:scan] + b"\x55" * 8 + data[scan:]


@settings(max_examples=60, deadline=None)
@given(kind=_JPEG_KINDS.map(lambda kind: (*kind[:4], False)), cmyk=st.booleans(), seed=st.integers(0, 2**16),
       cut=st.floats(0.05, 0.995))
def test_no_cut_sequential_jpeg_the_picture_test_decides_passes_as_whole(kind, cmyk, seed, cut):
    """The picture test's own cases (CMYK, or another warning before a cut): a cut passes only inside the last MCU's
    AC coefficients, where only the last 16 x 16 pixels differ. Its padded decodes stay at 1/4 scale, not the 1/8
    it has already made: these files' blocks average mid grey, so every 1/8 picture (DC only) is flat 128 and a cut
    one looked whole (found by this test when the 1/8 decode was tried as a saving)."""
    data = _picture_test_jpeg(kind, seed, cmyk)
    header_end = data.index(b"\xff\xda")
    at = header_end + 12 + int((len(data) - header_end - 14) * cut)
    result = normalise(data[:at] + b"\xff\xd9")
    if isinstance(result, NormalisedImage):
        # What was accepted decodes like the whole file but in the last MCU (a CMYK file is then converted and
        # re-encoded: compare the files' own decodes, not what is sent).
        whole = Image.open(io.BytesIO(data)).convert("RGB")
        cut_image = Image.open(io.BytesIO(data[:at] + b"\xff\xd9")).convert("RGB")
        width, height = whole.size
        for box in ((0, 0, width, max(0, height - 24)), (0, 0, max(0, width - 24), height)):
            if box[2] and box[3]:
                assert whole.crop(box).tobytes() == cut_image.crop(box).tobytes(), (kind, cmyk, cut)
    else:
        assert result.reason in ("corrupt", "truncated"), result
    whole = normalise(data)
    assert isinstance(whole, NormalisedImage), whole


@settings(max_examples=40, deadline=None)
@given(kind=_JPEG_KINDS, seed=st.integers(0, 2**16))
def test_every_whole_jpeg_passes_the_scan_check(kind, seed):
    result = normalise(_jpeg(kind, seed))
    assert isinstance(result, NormalisedImage) and result.unchanged, result


def test_a_photo_is_decoded_for_a_model_at_the_smallest_libjpeg_scale_keeping_twice_its_input_side():
    photo = samples.photo((2048, 1536))
    assert decode_for_model(photo, 224).size == model_decode_size(2048, 1536, 224) == (768, 576)  # 3/8: 576 >= 448
    assert decode_for_model(photo, 100).size == (512, 384)  # 2/8: 384 >= 200, while 1/8 (192) would not be
    assert decode_for_model(samples.photo((640, 480)), 224).size == (640, 480)  # 7/8 is 420 high: whole
    assert decode_for_model(samples.encode(Image.new("RGB", (900, 900)), "PNG"), 224).size == (224, 224)  # strips
    assert decode_for_model(samples.cmyk_jpeg(), 8).mode == "CMYK"  # not simplejpeg's: Pillow's 1/2, 1/4, 1/8
    checked = normalise(photo, model_side=224)  # the app with an in-process model: one decode, kept for it
    assert checked.unchanged and checked.decoded.size == (768, 576)
    assert checked.decoded.tobytes() == decode_for_model(photo, 224).tobytes()


@pytest.mark.parametrize("model_side", [None, 224])
def test_every_cut_inside_a_progressive_files_last_scan_is_corrupt(model_side):
    """The picture test's documented limit (a cut after every block's DC value passes) no longer decides a YCbCr or
    grey JPEG: libjpeg's own warning says where the data stopped, with or without an in-process model."""
    progressive = samples.encode(Image.open(io.BytesIO(samples.noisy_jpeg((400, 300)))), "JPEG", progressive=True)
    last_scan, end = progressive.rindex(b"\xff\xda"), progressive.rindex(b"\xff\xd9")
    cuts = range(last_scan + 20, end - 1, max(1, (end - last_scan) // 40))
    verdicts = [normalise(progressive[:at] + b"\xff\xd9", model_side=model_side) for at in cuts]
    assert len(verdicts) >= 30
    assert all(isinstance(v, Rejection) and v.reason == "corrupt" for v in verdicts), verdicts
    assert "premature end of data segment" in verdicts[0].message


@pytest.mark.parametrize("model_side", [None, 224])
def test_stray_bytes_before_the_end_marker_are_a_warning_the_picture_test_accepts(model_side):
    """libjpeg warns about extraneous bytes too (some encoders pad): that warning is not a cut, and it comes after
    every block was read, so it proves the file whole; the model's picture is decoded within validation as
    decode_for_model does."""
    photo = samples.photo((640, 480))
    end = photo.rindex(b"\xff\xd9")
    padded = photo[:end] + b"\x55" * 64 + photo[end:]
    result = normalise(padded, model_side=model_side)
    assert isinstance(result, NormalisedImage) and result.unchanged, getattr(result, "message", None)
    if model_side is None:
        assert result.decoded is None
    else:
        assert result.decoded.tobytes() == decode_for_model(padded, model_side).tobytes()


def test_an_image_sent_as_it_is_carries_its_decode_memory_so_a_model_need_not_parse_it_again():
    photo = samples.photo((2048, 1536))
    assert normalise(photo).decode_bytes == memory_plan(photo).peak_bytes > 0
    assert normalise(samples.tiff()).decode_bytes is None  # converted: other bytes, planned by whoever decodes them


@settings(max_examples=150, deadline=None)
@given(kind=_JPEG_KINDS, seed=st.integers(0, 2**16), cut=st.one_of(st.none(), st.floats(0.05, 0.995)),
       side=st.sampled_from([8, 24, 64, 224]))
def test_the_one_strict_decode_kept_for_an_in_process_model_never_accepts_what_the_scan_check_refuses(
        kind, seed, cut, side):
    """With ``model_side`` a JPEG is proved whole by one strict libjpeg decode that also feeds the model: every cut or
    whole file gets the scan check's verdict or a stricter one, and the picture kept is the one the runner decodes."""
    data = _jpeg(kind, seed)
    if cut is not None:
        header_end = data.index(b"\xff\xda")
        data = data[:header_end + 12 + int((len(data) - header_end - 14) * cut)] + b"\xff\xd9"
    plain, fused = normalise(data), normalise(data, model_side=side)
    if isinstance(plain, Rejection):
        assert isinstance(fused, Rejection) and fused.reason == plain.reason, (plain, fused)
    elif isinstance(fused, NormalisedImage):
        assert fused.data == plain.data and plain.decoded is None
        assert fused.decoded is not None and fused.decoded.tobytes() == decode_for_model(data, side).tobytes()
    else:  # stricter: a cut the scan check lets pass (its documented limit), caught by libjpeg's own warning
        assert fused.reason == "corrupt" and "premature end of data segment" in fused.message, fused
        assert cut is not None
    if cut is None:
        assert isinstance(fused, NormalisedImage) and fused.decoded is not None  # a whole file: one decode, kept


def _first_marker_by_the_book(data: bytes, start: int) -> int:
    """T.81 B.1.1.2/B.1.1.5 read literally: in scan data 0xFF is followed by 00 (stuffing), D0-D7 (restart) or more
    0xFF (fill); anything else makes that 0xFF a marker."""
    for at in range(start, len(data) - 1):
        if data[at] == 0xFF and data[at + 1] not in (0x00, 0xFF, *range(0xD0, 0xD8)):
            return at
    return -1


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.sampled_from([b"\xff", b"\x00", b"\xd0", b"\xd7", b"\xd8", b"\xd9", b"\xc4", b"\x12"]),
                     max_size=40).map(b"".join), start=st.integers(0, 8))
def test_the_scan_data_end_is_the_first_real_marker_however_stuffing_restarts_and_fill_bytes_mix(data, start):
    from functions.images import _next_marker

    assert _next_marker(data, start) == _first_marker_by_the_book(data, start)


def test_a_jpeg_turbojpeg_refuses_is_decoded_for_the_model_by_pillow_as_the_local_service_does(monkeypatch):
    """libjpeg-turbo's TurboJPEG API (simplejpeg) refuses some layouts its libjpeg API (Pillow) reads; the model then
    gets Pillow's picture at the nearest 1/2, 1/4 or 1/8, in cvops' runner and the local service alike, instead of
    an invocation that fails on every retry."""
    import simplejpeg

    from emulator import compact_model

    photo = samples.photo((2048, 1536))

    def refuses(*args, **kwargs):
        raise ValueError("Unsupported color conversion request")

    monkeypatch.setattr(simplejpeg, "decode_jpeg", refuses)
    picture = decode_for_model(photo, 224)
    assert picture.size == (1024, 768)  # Pillow's 1/2: the largest of 1/2, 1/4, 1/8 keeping 448
    assert compact_model._decode(photo).convert("RGB").tobytes() == picture.convert("RGB").tobytes()


def _padded_before_end(data: bytes) -> bytes:
    end = data.rindex(b"\xff\xd9")
    return data[:end] + b"\x55" * 64 + data[end:]


def _garbage_in_header(data: bytes) -> bytes:
    scan = data.index(b"\xff\xda")
    return data[:scan] + b"\x12" * 100 + data[scan:]


@pytest.mark.parametrize("model_side", [None, 224])
@pytest.mark.parametrize("damage", [_padded_before_end, _garbage_in_header], ids=["padded-before-end", "header-garbage"])
@pytest.mark.parametrize("progressive", [False, True])
def test_a_whole_jpeg_with_bytes_decoders_skip_is_proved_whole_by_libjpeg_without_the_picture_test(
        damage, progressive, model_side, monkeypatch):
    """Stray bytes in the header, or padding in front of the end marker, made libjpeg's strict decode stop at its
    warning and the picture test decode the file four more times (a 32 MB JPEG cost 2.0 s of CPU): header bytes are
    dropped before the strict decode, and the padding warning comes only after every block was read."""
    photo = samples.encode(Image.open(io.BytesIO(samples.noisy_jpeg((400, 300)))), "JPEG", progressive=progressive)
    data = damage(photo)
    monkeypatch.setattr(images, "_picture_test", lambda *args: pytest.fail("the picture test ran"))
    result = normalise(data, model_side=model_side)
    assert isinstance(result, NormalisedImage) and result.unchanged and result.data == data, result
    assert result.statistics["luminance_from"] in ("scan_check", "model_picture")
    if model_side is not None:
        assert result.decoded.tobytes() == decode_for_model(photo, model_side).tobytes()
    else:
        assert result.statistics == normalise(photo).statistics


@pytest.mark.parametrize("model_side", [None, 224])
def test_a_cut_jpeg_with_garbage_in_its_header_is_still_caught_by_libjpeg(model_side):
    photo = _garbage_in_header(samples.noisy_jpeg((400, 300)))
    end = photo.rindex(b"\xff\xd9")
    for at in range(photo.index(b"\xff\xda") + 200, end - 10, (end - photo.index(b"\xff\xda")) // 15):
        result = normalise(photo[:at] + b"\xff\xd9", model_side=model_side)
        assert isinstance(result, Rejection) and "premature end" in result.message, (at, result)


@pytest.mark.parametrize(("corner", "reads"), [(None, 1), (127, 3)])
def test_the_picture_test_reads_a_cmyk_jpeg_once_unless_its_last_pixel_is_the_fill_value(corner, reads, monkeypatch):
    """TurboJPEG does not decode CMYK, so the picture test decides every CMYK file. It read each one four times (its
    fill test took any CMYK pixel for the fill): a 32 MB CMYK JPEG cost 1.9 s of CPU. Now one 1/4-scale decode, and
    the two padded ones only when the last pixel is libjpeg's fill (127 in each channel of Adobe's inverted CMYK)."""
    pixels = bytearray(random.Random(5).randbytes(96 * 64 * 4))
    image = Image.frombytes("CMYK", (96, 64), bytes(pixels))
    if corner is not None:
        image.paste((corner,) * 4, (64, 32, 96, 64))
    data = samples.encode(image, "JPEG", quality=90)
    calls = []
    real = images._decode_scaled
    monkeypatch.setattr(images, "_decode_scaled", lambda body, scale: calls.append(scale) or real(body, scale))
    result = normalise(data)
    assert isinstance(result, NormalisedImage) and "CMYK converted to RGB" in result.changes, result
    assert len(calls) == reads, calls
    cut = normalise(data[:len(data) * 2 // 3] + b"\xff\xd9")
    assert isinstance(cut, Rejection) and cut.reason == "corrupt", cut

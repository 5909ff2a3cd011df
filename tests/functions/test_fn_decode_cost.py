"""A CPU budget per image (issue 17): files whose decoding would cost more than a photo's are refused from their
structure, before Pillow or libjpeg reads them, as ``too_costly_to_decode``; one slow scan check delays no other.

The hostile files are built byte by byte (tests/functions/decode_cost_cases.py) at small sizes; "refused without
decoding" is asserted by making every decoder entry point fail the test if it is called, and CPU time only as a
generous bound. bench/bench_decode_cost.py measures the same files at full size, in fresh processes.
"""

from __future__ import annotations

import json
import threading
import time

import azure.functions as func
import decode_cost_cases as dc
import memory_cases as mc
import pytest
import simplejpeg
from fn_helpers import registered
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import GifImagePlugin, Image, TiffImagePlugin

from functions import decode_cost, handler
from functions.decode_cost import CostLimits, jpeg_block_visits
from functions.images import Limits, NormalisedImage, Rejection, normalise

LIMITS = CostLimits()


def _refuse(*_args, **_kwargs):
    raise AssertionError("a decoder ran on a file that should have been refused from its structure")


def _refused(data: bytes, **options) -> Rejection:
    """normalise's verdict on ``data`` while any Pillow open or decode, libjpeg-turbo decode (simplejpeg) or Pillow
    frame count fails the test: refused from the structure alone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image.Image, "load", _refuse)
        patch.setattr(Image, "open", _refuse)
        patch.setattr(simplejpeg, "decode_jpeg", _refuse)
        patch.setattr(TiffImagePlugin.TiffImageFile, "n_frames", property(_refuse))
        patch.setattr(GifImagePlugin.GifImageFile, "n_frames", property(_refuse))
        started = time.process_time()
        result = normalise(data, **options)
        spent = time.process_time() - started
    assert isinstance(result, Rejection), result
    assert result.reason == decode_cost.REASON, result
    assert spent < 0.5, f"refusing took {spent:.2f} s of CPU"
    return result


@pytest.mark.parametrize("model_side", [None, 224], ids=["prediction_api", "in_process_model"])
def test_a_progressive_jpeg_repeating_one_scan_is_refused_before_any_decode(model_side):
    # 2048 x 2048 grey (65,536 blocks), 400 warning-free AC scans: 26 M block visits, over the 24 M budget. The old
    # code accepted it after decoding every scan several times (scan check, picture test).
    data = dc.many_scan_jpeg((2048, 2048), 400)
    rejection = _refused(data, model_side=model_side)
    assert "block decodes" in rejection.message and "24,000,000" in rejection.message


def test_a_jpeg_with_more_scans_than_any_encoder_writes_is_refused_whatever_its_size():
    rejection = _refused(dc.many_scan_jpeg((64, 64), LIMITS.max_jpeg_scans + 1))
    assert f"more than {LIMITS.max_jpeg_scans} scans" in rejection.message


@pytest.mark.parametrize("model_side", [None, 224], ids=["prediction_api", "in_process_model"])
def test_an_arithmetic_coded_jpeg_of_data_less_scans_is_refused_and_counted_twice(model_side):
    # 200 scans of 10 bytes over 65,536 blocks: 13 M visits, 26 M counted twice for arithmetic coding (a 2.5 KB
    # file; at 8000 x 8000 the same scans cost a pass over a million blocks each).
    data = dc.many_scan_jpeg((2048, 2048), 200, arithmetic=True)
    assert len(data) < 4096
    rejection = _refused(data, model_side=model_side)
    assert rejection.message.startswith("arithmetic-coded JPEG")


def test_the_same_scans_huffman_coded_are_within_the_budget():
    cost = jpeg_block_visits(dc.many_scan_jpeg((2048, 2048), 200))
    assert not cost.over and cost.visits == 201 * 65_536 and not cost.arithmetic


def test_a_tiff_of_many_pages_is_refused_without_pillow_counting_them():
    # Pillow counts pages in O(n^2) (8 MB took 34 s); the app only wanted the count for the record's text.
    rejection = _refused(dc.tiff_pages(LIMITS.max_frames + 1))
    assert f"more than {LIMITS.max_frames:,} pages" in rejection.message


def test_a_gif_of_many_frames_is_refused_without_pillow_counting_them():
    rejection = _refused(dc.gif_frames(LIMITS.max_frames + 1))
    assert f"more than {LIMITS.max_frames:,} frames" in rejection.message


@pytest.mark.parametrize("extensions, sub_blocks", [(LIMITS.max_gif_extension_blocks + 1, 0),
                                                   (0, LIMITS.max_gif_comment_bytes + 1)],
                         ids=["empty_extensions", "one_byte_comment_sub_blocks"])
def test_a_gif_of_many_comment_blocks_is_refused_before_pillow_reads_them(extensions, sub_blocks):
    # Pillow took 29 s over 3 MB of empty comment extensions, 31 s over 2 MB of one-byte comment sub-blocks.
    rejection = _refused(dc.gif_comments(extensions, sub_blocks))
    assert "blocks" in rejection.message and "comments" in rejection.message


def test_a_gif_of_many_one_byte_image_data_blocks_is_refused():
    two = dc.gif_frames(2)
    frame_data_at = 19 + 8 + 10 + 1  # header and colour table, graphic control extension, descriptor, code size
    data = two[:frame_data_at] + b"\x01\x44" * (LIMITS.max_gif_blocks + 1) + two[frame_data_at + 3:]
    assert "blocks" in _refused(data).message


def test_a_gif_with_a_short_comment_is_accepted():
    assert isinstance(normalise(dc.gif_comments(3, 40)), NormalisedImage)


@pytest.mark.parametrize("pages, loop", [(3, False), (40, True)], ids=["chain", "loop"])
def test_a_multi_page_tiff_is_counted_by_its_ifd_chain_for_the_record(monkeypatch, pages, loop):
    def refuse(_self):
        raise AssertionError("Pillow counted the pages")

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "n_frames", property(refuse))
    result = normalise(dc.tiff_pages(pages, loop=loop))
    assert isinstance(result, NormalisedImage), result
    assert f"animated TIFF with {pages} frames: first frame used" in result.changes


def test_an_animated_gif_is_counted_by_its_blocks_for_the_record(monkeypatch):
    monkeypatch.setattr(GifImagePlugin.GifImageFile, "n_frames", property(lambda _self: 1 / 0))
    result = normalise(dc.gif_frames(25))
    assert isinstance(result, NormalisedImage), result
    assert "animated GIF with 25 frames: first frame used" in result.changes


def test_a_png_of_a_million_empty_chunks_is_refused_before_pillow_reads_them():
    png = mc.png((16, 16), 0)
    data = png[:33] + mc._chunk(b"abCd", b"") * (LIMITS.max_png_chunks + 1) + png[33:]
    assert f"more than {LIMITS.max_png_chunks:,} chunks" in _refused(data).message


def test_a_jpeg_of_many_segments_or_fill_bytes_before_its_scan_is_refused():
    photo = mc.jpeg((64, 64))
    comments = photo[:2] + b"\xff\xfe\x00\x02" * (LIMITS.max_jpeg_segments + 1) + photo[2:]
    fill = photo[:2] + b"\xff" * (LIMITS.max_jpeg_stray_bytes + 1) + photo[2:]
    for data in (comments, fill):
        assert "segments" in _refused(data).message


def test_an_rle_bmp_of_one_pixel_runs_is_refused_by_its_compressed_bytes():
    width, height = 3000, 1000  # two bytes a pixel: 6 MB of RLE data, decoded byte by byte in Python
    pixels = (bytes((1, 7)) * width + b"\x00\x00") * height + b"\x00\x01"
    data = mc.bmp_rle8((width, height))
    header_end = len(data) - len((b"".join(bytes((min(255, width - x), 7)) for x in range(0, width, 255))
                                  + b"\x00\x00") * height + b"\x00\x01")
    data = data[:header_end] + pixels
    assert "RLE-compressed" in _refused(data).message


@pytest.mark.parametrize("make", [
    lambda: dc.progressive_photo((1600, 1200)),
    lambda: mc.jpeg((4000, 3000)),
    lambda: mc.jpeg((3000, 2000), progressive=True, subsampling=0),
    lambda: mc.tiff_pages((200, 100), 5),
    lambda: mc.gif((320, 240), 60),
    lambda: mc.bmp_rle8((4000, 3000)),
], ids=["progressive_photo", "baseline_12mp", "progressive_444", "tiff_5_pages", "gif_60_frames", "bmp_rle8"])
def test_ordinary_photos_and_files_are_within_every_cost_limit(make):
    data = make()
    assert decode_cost.too_costly(data) is None
    assert isinstance(normalise(data), NormalisedImage)


def test_a_real_progressive_jpeg_uses_a_few_scans_and_passes():
    cost = jpeg_block_visits(dc.progressive_photo((800, 600)))
    assert 6 <= cost.scans <= 12 and not cost.over


# Budgets scaled down so that what they accept is cheap to decode in a test; the rule is the same.
SMALL = CostLimits(max_jpeg_scans=120, max_jpeg_block_visits=600_000)


def _verdict_and_cpu(scans: int, arithmetic: bool, side: int, model: bool) -> tuple[bool, bool, float]:
    """(over the SMALL budget by the rule's arithmetic, refused as too costly, CPU seconds of normalise)."""
    data = dc.many_scan_jpeg((side, side), scans, arithmetic=arithmetic)
    blocks = ((side + 7) // 8) ** 2
    visits = (scans + 1) * blocks * (SMALL.arithmetic_weight if arithmetic else 1)  # the DC scan and the AC ones
    over = scans + 1 > SMALL.max_jpeg_scans or visits > SMALL.max_jpeg_block_visits
    started = time.process_time()
    result = normalise(data, Limits(cost=SMALL), model_side=224 if model else None)
    spent = time.process_time() - started
    return over, isinstance(result, Rejection) and result.reason == decode_cost.REASON, spent


@pytest.mark.parametrize("side, scans, arithmetic, over", [
    (600, 105, False, False), (600, 106, False, True),  # 5,625 blocks: 106 scans 596,250 visits; 107: 601,875
    (600, 52, True, False), (600, 53, True, True),  # counted twice: 53 scans 596,250; 54: 607,500
    (64, 119, False, False), (64, 120, False, True),  # 121 scans with the DC one: over 120 whatever the size
], ids=["huffman_under", "huffman_over", "arithmetic_under", "arithmetic_over", "scans_under", "scans_over"])
def test_the_rule_refuses_from_exactly_one_scan_over_each_limit(side, scans, arithmetic, over):
    expected, refused, _ = _verdict_and_cpu(scans, arithmetic, side, model=False)
    assert expected == over and refused == over


@settings(max_examples=25, deadline=None)
@given(scans=st.integers(1, 160), arithmetic=st.booleans(), side=st.sampled_from([8, 64, 200, 512]),
       model=st.booleans())
def test_scan_counts_by_coding_by_size_are_refused_exactly_when_over_budget_and_cheap_when_accepted(
        scans, arithmetic, side, model):
    over, refused, spent = _verdict_and_cpu(scans, arithmetic, side, model)
    assert refused == over
    if not over:
        assert spent < 1.0, f"an accepted file cost {spent:.2f} s of CPU"


def test_one_slow_scan_check_does_not_delay_another(monkeypatch):
    # Four slow files used to fill the 4-thread pool and every ordinary photo waited behind them.
    release = threading.Event()

    def slow() -> None:
        release.wait(30)

    try:
        slow_checks = [handler.start_scan_check(slow) for _ in range(6)]
        quick = handler.start_scan_check(lambda: Rejection("corrupt", "found"))
        assert quick.result(timeout=5) == Rejection("corrupt", "found")
        assert not any(check.done() for check in slow_checks)
    finally:
        release.set()
    assert all(check.result(timeout=5) is None for check in slow_checks)


def test_a_failing_scan_check_hands_its_error_to_the_caller():
    def broken() -> None:
        raise OSError("decoder failed")

    with pytest.raises(OSError, match="decoder failed"):
        handler.start_scan_check(broken).result(timeout=5)


def test_post_classify_answers_a_cpu_bomb_with_422_without_decoding_it(function_env):
    # The POST /api/classify took 8.6 s over a 300 KB many-scan JPEG, then answered.
    request = func.HttpRequest(method="POST", url="/api/classify", body=dc.many_scan_jpeg((2048, 2048), 400),
                               params={}, headers={"Content-Type": "application/octet-stream"})
    started = time.process_time()
    response = registered("classify_http")(request)
    assert time.process_time() - started < 1.0
    assert response.status_code == 422
    answer = json.loads(response.get_body())
    assert answer["outcome"] == "quarantine" and answer["reasons"][0]["code"] == decode_cost.REASON


def test_a_lossless_jpeg_counts_every_sample():
    # SOF3 grey 1000 x 1000, one scan: 1 M samples, each coded on its own (libjpeg-turbo 3 decodes lossless JPEG).
    lossless = dc.many_scan_jpeg((1000, 1000), 0, arithmetic=True).replace(b"\xff\xca", b"\xff\xc3", 1)
    cost = jpeg_block_visits(lossless)
    assert cost.visits == 125 * 125 * 64 and not cost.arithmetic


def test_a_multi_scan_jpeg_with_more_image_data_than_the_limit_is_refused_and_a_baseline_one_is_not():
    # Each byte of a progressive file's data is decoded through libjpeg's coefficient buffer, up to five times by the
    # scan check: 21.6 MB of it cost 5.4 s. The limit scaled down here; the rule is the same.
    import numpy as np

    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8), "RGB")
    small = CostLimits(max_multi_scan_data_bytes=100_000)
    for progressive in (True, False):
        data = mc._save(noise, "JPEG", quality=95, progressive=progressive)
        assert len(data) > 110_000
        result = normalise(data, Limits(cost=small))
        if progressive:
            assert isinstance(result, Rejection) and result.reason == decode_cost.REASON, result
            assert "100,000 bytes of image data" in result.message
        else:
            assert isinstance(result, NormalisedImage), result

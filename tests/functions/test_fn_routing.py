"""The blob trigger end to end: Azurite, the local Custom Vision service, the registered function, the shipped policy."""

from __future__ import annotations

import json

import decode_cost_cases as dc
import function_samples as samples
import pytest
from fn_helpers import scene

from functions.naming import SIDECAR_SUFFIX


def test_a_clear_image_is_accepted_into_its_tag_with_a_record_beside_it_and_in_results(function_env):
    data = scene("beach")
    function_env.upload("cams/1/shot.jpg", data)
    outcome = function_env.deliver("cams/1/shot.jpg")

    record = outcome.record
    assert record["outcome"] == "accepted" and record["tags"] == ["beach"]
    assert function_env.names("accepted") == ["beach/cams/1/shot.jpg", f"beach/cams/1/shot.jpg{SIDECAR_SUFFIX}"]
    assert function_env.read("accepted", "beach/cams/1/shot.jpg") == data  # the original, untouched
    assert json.loads(function_env.read("accepted", f"beach/cams/1/shot.jpg{SIDECAR_SUFFIX}")) == record
    [results_name] = function_env.names("results")
    assert results_name.startswith("date=") and results_name.endswith(".jsonl")
    assert function_env.records() == [record]
    assert record["blob"]["etag"] and record["blob"]["name"] == "cams/1/shot.jpg"
    assert record["model"]["publish_name"] == "fn-multiclass" and record["model"]["iteration_id"]
    assert record["policy"]["version"] == "default-1" and len(record["policy"]["sha256"]) == 64
    assert record["predictions"][0]["tag"] == "beach" and set(record["timings_ms"]) >= {"validate", "predict"}
    assert outcome.storage_calls == 4
    assert function_env.names("incoming") == ["cams/1/shot.jpg"]  # not moved unless the setting says so


def test_an_image_below_the_threshold_but_in_the_band_goes_to_review(function_env):
    function_env.set(CVOPS_POLICY=json.dumps({"version": "strict", "default_threshold": 0.9999, "review_band": 0.9999}))
    function_env.upload("a.jpg", scene("forest"))
    outcome = function_env.deliver("a.jpg")
    assert outcome.record["outcome"] == "review" and outcome.record["reasons"][0]["code"] == "review_band"
    assert function_env.names("review") == ["a.jpg", f"a.jpg{SIDECAR_SUFFIX}"]
    assert function_env.names("accepted") == []


def test_no_tag_passing_is_rejected_when_the_policy_says_so(function_env):
    function_env.set(CVOPS_POLICY=json.dumps({"version": "r", "default_threshold": 1.0, "review_band": 0.0,
                                              "no_tag_passes": "rejected"}))
    function_env.upload("b.jpg", scene("city"))
    assert function_env.deliver("b.jpg").record["outcome"] == "rejected"
    assert function_env.names("rejected") == ["b.jpg", f"b.jpg{SIDECAR_SUFFIX}"]


@pytest.mark.parametrize("make, reason", [
    (lambda: b"", "empty"),
    (lambda: samples.truncated(samples.noisy_jpeg((300, 200))), "truncated"),
    (lambda: b"not an image, just text\n", "not_an_image"),
    (samples.ico, "unsupported_format"),
    (lambda: samples.png_bomb(40_000), "decompression_bomb"),
    (lambda: samples.wide_png((2600, 100)), "bad_aspect_ratio"),
    (lambda: dc.many_scan_jpeg((2048, 2048), 200, arithmetic=True), "too_costly_to_decode"),
], ids=["empty", "truncated", "text", "ico", "bomb", "aspect", "cpu_bomb"])
def test_an_unusable_image_is_quarantined_with_its_reason_and_the_invocation_succeeds(function_env, make, reason):
    data = make()
    function_env.upload("bad.jpg", data)
    outcome = function_env.deliver("bad.jpg")
    assert outcome.record["outcome"] == "quarantine"
    assert outcome.record["reasons"][0]["code"] == reason
    assert outcome.record["predictions"] is None  # no prediction call was spent on it
    assert function_env.names("quarantine") == ["bad.jpg", f"bad.jpg{SIDECAR_SUFFIX}"]
    assert function_env.read("quarantine", "bad.jpg") == data


@pytest.mark.parametrize("store", ["false", "true"])
def test_a_cut_jpeg_with_its_end_marker_appended_is_quarantined_as_corrupt_whenever_its_check_runs(function_env,
                                                                                                   store):
    # Without stored predictions the scan check runs while the prediction call waits (one call spent on it); with
    # stored predictions it runs first, so the project never keeps the damaged image.
    function_env.set(CVOPS_STORE_PREDICTIONS=store)
    data = samples.truncated(samples.noisy_jpeg((400, 300)), 0.6) + b"\xff\xd9"
    function_env.upload("cut.jpg", data)
    outcome = function_env.deliver("cut.jpg")
    assert (outcome.record["outcome"], outcome.record["reasons"][0]["code"]) == ("quarantine", "corrupt")
    assert function_env.names("quarantine") == ["cut.jpg", f"cut.jpg{SIDECAR_SUFFIX}"]
    assert function_env.names("accepted") == []


@pytest.mark.parametrize("make, change", [
    (samples.cmyk_jpeg, "CMYK"),
    (samples.png_16_bit_grey, "16-bit"),
    (samples.animated_gif, "first frame"),
    (samples.exif_rotated_jpeg, "EXIF orientation"),
    (samples.tiff, "TIFF converted"),
    (lambda: samples.wide_png((10_600, 600)), "downscaled"),
], ids=["cmyk", "16bit", "gif", "exif", "tiff", "10240px"])
def test_a_fixable_image_is_classified_from_a_normalised_copy_and_routed_as_the_original(function_env, make, change):
    data = make()
    function_env.upload("fix.img", data)
    record = function_env.deliver("fix.img").record
    assert record["outcome"] in ("accepted", "review", "rejected")
    assert any(change in c for c in record["image"]["changes"]), record["image"]
    assert record["predictions"]
    copy = record["destinations"][0].split("/", 1)[1]
    container = record["destinations"][0].split("/", 1)[0]
    assert function_env.blob_service.get_blob_client(container, copy).download_blob().readall() == data

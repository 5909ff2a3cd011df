"""Records carry what monitoring needs (schema cvops.result/2): the luminance of pixels validation decodes anyway,
the EXIF camera (escaped, capped), and the blob's slice; a record of version 1 is still read.

Tolerances, measured on the devkit's scenes (20 JPEGs, 4 classes): a JPEG is measured on its 1/8-scale decode, each
pixel an 8 x 8 block's mean. Its mean is the full image's within 0.6 levels (checked at 1.0); its spread is that of
the 8 x 8 block means within 2.3 levels (checked at 3.0), and never above the full image's spread (detail finer than a
block is left out). A converted image is measured on a sample of at most 2^18 of the pixels sent for prediction.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cvops.errors import ConfigurationError
from devkit import scenes
from functions import images
from functions.config import load_config
from functions.records import RECORD_SCHEMA, source_slice


def _grey(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)


def _block_means(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    return grey[:h // 8 * 8, :w // 8 * 8].reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))


@pytest.mark.azurite
def test_a_jpeg_through_the_blob_trigger_records_its_luminance_camera_and_slice(function_env):
    data = scenes.camera_shot("forest", 4, make="Fabrikam", model="NightOwl 2", exposure=0.6, size=(640, 480))
    function_env.set(CVOPS_SLICE_DEPTH="2")
    function_env.upload("site-3/camera-b/day-1/a.jpg", data)

    record = function_env.deliver("site-3/camera-b/day-1/a.jpg").record

    assert record["schema"] == RECORD_SCHEMA == "cvops.result/2"
    assert record["blob"]["slice"] == "site-3/camera-b/"
    image = record["image"]
    grey = _grey(data)
    assert image["luminance_from"] == "scan_check"
    assert abs(image["luminance_mean"] - grey.mean()) <= 1.0
    assert abs(image["luminance_std"] - _block_means(grey).std()) <= 3.0
    assert image["luminance_std"] <= grey.std() + 0.5
    assert image["exif"] == {"make": "Fabrikam", "model": "NightOwl 2"}
    assert (image["width"], image["height"], image["format"], image["bytes"]) == (640, 480, "JPEG", len(data))


@pytest.mark.azurite
def test_a_png_sent_as_it_is_records_no_luminance_and_a_converted_one_records_the_picture_sent(function_env):
    plain = scenes.generate("beach", 2, size=(320, 240), fmt="PNG")
    big = scenes.oversized_png(seed=3)
    function_env.upload("plain.png", plain)
    function_env.upload("scans/big.png", big)

    untouched = function_env.deliver("plain.png").record["image"]
    converted = function_env.deliver("scans/big.png").record

    # Proved whole by its checksums: no pixel was decoded, so nothing was measured (null, not a guess).
    assert (untouched["luminance_mean"], untouched["luminance_std"], untouched["luminance_from"]) == (None,) * 3
    assert untouched["exif"] is None
    assert converted["blob"]["slice"] == "scans/" and converted["image"]["luminance_from"] == "converted"
    grey = _grey(big)
    assert converted["image"]["changes"]
    assert abs(converted["image"]["luminance_mean"] - grey.mean()) <= 1.0
    assert abs(converted["image"]["luminance_std"] - grey.std()) <= 1.0


def test_an_in_process_models_picture_is_what_is_measured_when_the_model_decodes():
    data = scenes.generate("city", 1, size=(1200, 900))
    checked = images.normalise(data, model_side=224)
    grey = _grey(data)
    assert checked.statistics["luminance_from"] == "model_picture"
    assert abs(checked.statistics["luminance_mean"] - grey.mean()) <= 1.0


def test_exif_text_is_escaped_and_capped_as_attacker_controlled():
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "Evil\nCam\x1b[31m\u202e" + "z" * 500
    exif[0x0110] = "\x00\x00 "
    Image.new("RGB", (64, 64), (90, 90, 90)).save(out, "JPEG", exif=exif)
    camera = images.exif_camera(Image.open(io.BytesIO(out.getvalue())))
    assert camera is not None and set(camera) == {"make"}  # a model of NULs and spaces names nothing
    make = camera["make"]
    assert make.startswith("Evil\\nCam\\x1b[31m") and make.isprintable() and "\n" not in make
    assert len(make) == images.EXIF_TEXT_CHARS


def test_the_slice_is_the_names_first_folders():
    assert source_slice("site-3/camera-b/a.jpg", 1) == "site-3/"
    assert source_slice("site-3/camera-b/a.jpg", 2) == "site-3/camera-b/"
    assert source_slice("site-3/camera-b/a.jpg", 5) == "site-3/camera-b/"
    assert source_slice("a.jpg", 1) == ""


@pytest.mark.parametrize("value", ["0", "17", "two", "1.5"])
def test_a_slice_depth_out_of_range_is_refused_naming_the_setting(value, monkeypatch):
    env = {"VISION_PREDICTION_ENDPOINT": "https://x.cognitiveservices.azure.com/", "VISION_PROJECT_ID":
           "00000000-0000-0000-0000-000000000001", "VISION_PUBLISH_NAME": "p", "CVOPS_STORAGE":
           "UseDevelopmentStorage=true", "CVOPS_POLICY": '{"version": "t", "default_threshold": 0.5}',
           "CVOPS_SLICE_DEPTH": value}
    with pytest.raises(ConfigurationError, match="CVOPS_SLICE_DEPTH"):
        load_config(env)


def test_a_deferred_scan_check_measures_what_the_inline_one_does_and_a_cut_file_measures_nothing():
    data = scenes.generate("mountain", 6, size=(800, 600))
    inline = images.normalise(data)
    deferred = images.normalise(data, defer_scan_check=True)
    assert deferred.statistics == {} and deferred.pending_check is not None
    assert deferred.pending_check() is None
    assert deferred.statistics == inline.statistics and inline.statistics["luminance_from"] == "scan_check"

    cut = images.normalise(data[:len(data) // 2] + b"\xff\xd9", defer_scan_check=True)
    assert isinstance(cut.pending_check(), images.Rejection)
    assert cut.summary()["luminance_mean"] is None  # a quarantine record says nothing about a picture it lacks

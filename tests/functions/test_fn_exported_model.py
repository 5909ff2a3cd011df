"""The exported-model runner (functions/exported_model.py) on models built in Custom Vision's export format: it feeds
each model the way its metadata says, and refuses, naming what it found, a file it cannot interpret."""

from __future__ import annotations

import hashlib
import io
import math
import zipfile

import pytest

from functions import exported_model
from functions.exported_model import ExportedModel, ModelRefused
from tests.onnx_exports import LABELS, build_onnx, build_zip, solid_jpeg

RED = solid_jpeg((255, 0, 0))
SOFT = math.e / (math.e + 2)  # a pure colour's probability when fed 0-1


def test_channel_order_follows_the_metadata_bgr8_gives_the_swapped_answer():
    rgb = ExportedModel.load(build_zip(pixel_format="Rgb8"))
    bgr = ExportedModel.load(build_zip(pixel_format="Bgr8"))
    assert rgb.predict(RED)[0] == ("red", pytest.approx(1.0))
    assert bgr.predict(RED)[0] == ("blue", pytest.approx(1.0))


def test_range_follows_the_metadata_normalized_0_1_feeds_pixels_over_255():
    wide = ExportedModel.load(build_zip(pixel_range="NominalRange_0_255"))
    unit = ExportedModel.load(build_zip(pixel_range="Normalized_0_1"))
    assert wide.predict(RED)[0][1] == pytest.approx(1.0, abs=1e-6)
    assert unit.predict(RED)[0] == ("red", pytest.approx(SOFT, abs=1e-5))


def test_float16_inputs_are_fed_float16_and_agree_within_0_002():
    full = ExportedModel.load(build_zip(pixel_range="Normalized_0_1"))
    half = ExportedModel.load(build_zip(pixel_range="Normalized_0_1", float16=True))
    green = solid_jpeg((10, 200, 30))
    assert [t for t, _ in full.predict(green)] == [t for t, _ in half.predict(green)]
    for (_, a), (_, b) in zip(full.predict(green), half.predict(green), strict=True):
        assert abs(a - b) < 0.002


def test_predictions_are_sorted_and_named_by_labels_txt_with_sha256_and_labels():
    data = build_zip(labels=("cat", "dog", "fox"))
    model = ExportedModel.load(data)
    result = model.predict(solid_jpeg((0, 0, 255)))
    assert result[0] == ("fox", pytest.approx(1.0))
    assert [p for _, p in result] == sorted((p for _, p in result), reverse=True)
    assert model.labels == ("cat", "dog", "fox")
    assert model.sha256 == hashlib.sha256(data).hexdigest()
    assert model.describe() == {"sha256": model.sha256, "labels": ["cat", "dog", "fox"], "contract": "custom-vision"}


def test_a_bare_onnx_loads_with_the_labels_file_beside_it(tmp_path):
    (tmp_path / "model.onnx").write_bytes(build_onnx())
    with pytest.raises(ModelRefused, match="no labels"):
        ExportedModel.load(tmp_path / "model.onnx")
    (tmp_path / "labels.txt").write_text("\n".join(LABELS))
    assert ExportedModel.load(tmp_path / "model.onnx").predict(RED)[0][0] == "red"
    assert ExportedModel.load(build_onnx(), labels=list(LABELS)).labels == LABELS


def test_one_session_per_model_however_often_it_is_loaded():
    data = build_zip(size=12)
    before = exported_model.sessions_created()
    for _ in range(3):
        ExportedModel.load(data).predict(RED)
    assert exported_model.sessions_created() - before == 1


@pytest.mark.parametrize(("kwargs", "found"), [
    ({"extra_input": True}, r"2 inputs \(data \[1, 3, 8, 8\], mask \[1, 1\]\)"),
    ({"input_shape": [1, 8, 8, 3]}, r"input 'data' is \[1, 8, 8, 3\]"),
    ({"input_shape": [1, 3, 8, 6]}, r"input 'data' is \[1, 3, 8, 6\]"),
    ({"input_shape": [2, 3, 8, 8]}, r"input 'data' is \[2, 3, 8, 8\]"),
    ({"outputs": 4}, r"first output 'model_output' is \[1, 4\].*N = 3 labels"),
    ({"pixel_format": "Gray8"}, r"Image.BitmapPixelFormat is 'Gray8'"),
    ({"pixel_format": None}, r"Image.BitmapPixelFormat is None"),
    ({"pixel_range": "NominalRange_16_235"}, r"Image.NominalPixelRange is 'NominalRange_16_235'"),
])
def test_a_model_outside_the_contract_is_refused_naming_what_was_found(kwargs, found):
    with pytest.raises(ModelRefused, match=found):
        ExportedModel.load(build_zip(**kwargs))


def test_labels_that_do_not_match_the_output_are_refused_naming_both_counts():
    with pytest.raises(ModelRefused, match=r"\[1, 3\].*N = 4 labels"):
        ExportedModel.load(build_zip(labels=("a", "b", "c", "d")))


def test_a_zip_without_its_labels_or_model_is_refused_naming_what_it_holds():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.onnx", build_onnx())
    with pytest.raises(ModelRefused, match=r"found 1 \.onnx and 0 labels.txt among \['model.onnx'\]"):
        ExportedModel.load(buffer.getvalue())


def test_a_file_that_is_not_a_model_is_refused():
    with pytest.raises(ModelRefused, match="onnxruntime cannot load"):
        ExportedModel.load(b"not a model at all", labels=list(LABELS))

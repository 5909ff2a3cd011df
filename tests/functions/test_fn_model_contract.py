"""A model is loaded only if its answers are probabilities, and a model zip only if it is what it declares.

Both are checked when the model loads (the app's first invocation, `cvops predict --model`): a model answering raw
scores, integers or booleans would otherwise route every image by numbers the policy reads as probabilities, and a
small zip inflating to gigabytes would take the instance's memory before anything refused it.
"""

from __future__ import annotations

import io
import math
import tracemalloc
import zipfile

import pytest
from onnx import TensorProto

from functions.exported_model import MAX_COMPRESSION_RATIO, MAX_MODEL_BYTES, ExportedModel, ModelRefused
from tests.onnx_exports import LABELS, build_onnx, build_zip, solid_jpeg

GREEN = solid_jpeg((0, 255, 0))


@pytest.mark.parametrize(("kwargs", "found"), [
    ({"activation": "none"}, r"answered \[128, 128, 128\]: values from 128 to 128, outside \[0, 1\]"),
    ({"activation": "none", "pixel_range": "Normalized_0_1", "size": 4},
     r"answered \[0.502, 0.502, 0.502\].*"),  # in [0, 1] by chance: the sum check (Multiclass) catches it
    ({"output_type": TensorProto.INT64}, r"first output 'model_output' is tensor\(int64\)"),
    ({"output_type": TensorProto.BOOL}, r"first output 'model_output' is tensor\(bool\)"),
    ({"output_type": TensorProto.INT32}, r"first output 'model_output' is tensor\(int32\)"),
])
def test_a_model_whose_outputs_are_not_probabilities_is_refused_at_load_naming_what_it_found(kwargs, found):
    with pytest.raises(ModelRefused, match=found):
        ExportedModel.load(build_zip(**kwargs), classification="Multiclass")


def test_a_multiclass_model_whose_probabilities_do_not_sum_to_one_is_refused_and_the_same_multilabel_loads():
    data = build_zip(activation="sigmoid", pixel_range="Normalized_0_1")  # sigmoid(0.502) = 0.623 for each of 3 tags
    with pytest.raises(ModelRefused, match=r"they sum to 1\.869, not 1 \(within 0\.01\)"):
        ExportedModel.load(data, classification="Multiclass")
    model = ExportedModel.load(data, classification="Multilabel")  # independent probabilities: no sum
    assert [round(p, 3) for _, p in model.predict(GREEN)] == [0.731, 0.5, 0.5]


def test_a_float16_softmax_model_passes_the_probe():
    assert ExportedModel.load(build_zip(float16=True), classification="Multiclass").labels == LABELS


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf])
def test_a_model_answering_a_non_finite_value_only_for_some_pictures_loads_and_answers_it_at_run_time(special):
    """The grey probe has red, so this model passes it; a picture without red gets ``special`` for every tag (the
    app then routes it to review as ``invalid_score``)."""
    model = ExportedModel.load(build_zip(special=special), classification="Multiclass")
    values = [p for _, p in model.predict(GREEN)]
    assert all(math.isnan(v) for v in values) if math.isnan(special) else values == [special] * 3
    assert model.predict(solid_jpeg((255, 0, 0)))[0][0] == "red"


def _zip(members: dict[str, bytes], declared: dict[str, int] | None = None) -> bytes:
    """A zip of ``members``; ``declared`` overrides the inflated sizes its central directory states (a forged
    header, as a hostile upload would carry)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, size in (declared or {}).items():
            archive.getinfo(name).file_size = size
    return buffer.getvalue()


def _peak_while_loading(data: bytes, load=None) -> tuple[ModelRefused, int]:
    tracemalloc.start()
    try:
        with pytest.raises(ModelRefused) as refused:
            (load or ExportedModel.load)(data)
        return refused.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_zip_bomb_is_refused_by_its_compression_ratio_before_it_is_inflated():
    bomb = _zip({"model.onnx": bytes(256 * 1024 * 1024), "labels.txt": b"a\nb\nc\n"})  # 256 MiB of zeros
    assert len(bomb) < 1024 * 1024
    refused, peak = _peak_while_loading(bomb)
    assert f"above {MAX_COMPRESSION_RATIO}:1" in str(refused) and "'model.onnx' inflates" in str(refused)
    assert peak < 8 * 1024 * 1024, f"{peak:,} bytes allocated while refusing a {len(bomb):,}-byte zip"


@pytest.mark.parametrize("labels", ["labels.txt", "labels.json"])
def test_a_zip_bomb_is_refused_before_it_is_inflated_whichever_contract_its_files_name(labels):
    """The contract is recognised from the files, so a bomb naming labels.json reaches AutoML's loader: the same
    checked reader serves both (functions.exported_model.export_members)."""
    from functions.model_loader import load_model

    bomb = _zip({"model.onnx": bytes(256 * 1024 * 1024), labels: b'["a", "b"]'})
    refused, peak = _peak_while_loading(bomb, load_model)
    assert f"above {MAX_COMPRESSION_RATIO}:1" in str(refused) and "'model.onnx' inflates" in str(refused)
    assert peak < 8 * 1024 * 1024, f"{peak:,} bytes allocated while refusing a {len(bomb):,}-byte zip"


def test_a_zip_declaring_a_model_above_the_cap_is_refused_before_it_is_inflated():
    forged = _zip({"model.onnx": bytes(32 * 1024 * 1024), "labels.txt": b"a\n"},
                  declared={"model.onnx": 1024 ** 3})
    refused, peak = _peak_while_loading(forged)
    assert f"is 1,073,741,824 bytes inflated, above the runner's limit of {MAX_MODEL_BYTES:,}" in str(refused)
    assert peak < 8 * 1024 * 1024


def test_a_zip_whose_header_understates_its_model_is_read_no_further_than_declared():
    """A lying header (2 KB declared, 32 MiB inside) is read no further than declared, then refused as damaged."""
    forged = _zip({"model.onnx": bytes(32 * 1024 * 1024), "labels.txt": b"a\n"}, declared={"model.onnx": 2048})
    refused, peak = _peak_while_loading(forged)
    assert "cannot be read" in str(refused) or "onnxruntime cannot load" in str(refused)
    assert peak < 8 * 1024 * 1024


def test_a_labels_file_above_its_cap_is_refused_naming_it():
    data = _zip({"model.onnx": build_onnx(), "labels.txt": b"a\n" * (600 * 1024)})
    with pytest.raises(ModelRefused, match=r"'labels.txt' is 1,228,800 bytes inflated, above the runner's limit"):
        ExportedModel.load(data)


def test_cvops_predict_refuses_a_multiclass_model_whose_probabilities_do_not_sum_to_one(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipelines.cli import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.zip").write_bytes(build_zip(activation="sigmoid", pixel_range="Normalized_0_1"))
    (tmp_path / "green.png").write_bytes(GREEN)
    env = {"CVOPS_SPEC": "", "CVOPS_PROJECT": "", "VISION_TRAINING_ENDPOINT": "", "VISION_TRAINING_KEY": "",
           "VISION_PREDICTION_ENDPOINT": "", "VISION_PREDICTION_KEY": ""}
    result = CliRunner().invoke(cli, ["predict", "--model", "model.zip", "green.png"], env=env)
    assert result.exit_code == 2, result.output
    assert "--model model.zip" in result.stderr and "sum to 1.869, not 1" in result.stderr


def test_the_function_app_refuses_a_multiclass_policy_with_a_model_whose_probabilities_do_not_sum_to_one(
        function_env, tmp_path):
    """The app's policy.yaml is Multiclass: a sigmoid model would route by numbers that are not one softmax."""
    from fn_helpers import registered

    from cvops.errors import ConfigurationError

    (tmp_path / "model.zip").write_bytes(build_zip(activation="sigmoid", pixel_range="Normalized_0_1"))
    function_env.set(CVOPS_MODEL=str(tmp_path / "model.zip"), VISION_PREDICTION_ENDPOINT="http://127.0.0.1:9/",
                     VISION_PROJECT_ID="", VISION_PUBLISH_NAME="")
    function_env.upload("a.png", GREEN)
    with pytest.raises(ConfigurationError, match=r"CVOPS_MODEL=.*sum to 1\.869, not 1"):
        registered("route_new_blob")(function_env.client("a.png"))
    assert function_env.names("results") == []

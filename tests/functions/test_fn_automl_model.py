"""The runner with Azure ML AutoML's image-classification ONNX exports: a model built to AutoML's documented contract
(tests/automl_exports.py) gives the probabilities of Microsoft's documented preprocessing, computed independently, in
the runner and in the Function App with CVOPS_MODEL; out-of-contract files are refused naming what was found."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from PIL import Image

from devkit import scenes
from functions import automl_model, model_loader
from functions.exported_model import ExportedModel, ModelRefused
from tests import onnx_exports
from tests.automl_exports import LABELS, build_onnx, build_zip, reference_probabilities


def _png(size: tuple[int, int], seed: int, mode: str = "RGB") -> bytes:
    image = Image.open(io.BytesIO(scenes.generate(("beach",) if seed % 2 else ("city",), seed, size=size, fmt="PNG")))
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


IMAGES = {"landscape 4:3": ((400, 300), "RGB"), "portrait": ((300, 500), "RGB"), "square": ((256, 256), "RGB"),
          "smaller than the crop": ((160, 120), "RGB"), "grey": ((320, 240), "L"), "with alpha": ((300, 300), "RGBA")}


@pytest.mark.parametrize("multilabel", [False, True], ids=["multiclass-softmax", "multilabel-sigmoid"])
@pytest.mark.parametrize("case", list(IMAGES))
def test_probabilities_equal_microsofts_documented_preprocessing_within_1e_4(case, multilabel):
    size, mode = IMAGES[case]
    data = _png(size, seed=len(case), mode=mode)
    model = model_loader.load_model(build_zip(), classification="multilabel" if multilabel else "multiclass")
    assert isinstance(model, automl_model.AutoMLModel)
    got = dict(model.predict(data))
    want = reference_probabilities(data, multilabel=multilabel)
    assert max(abs(got[t] - want[t]) for t in LABELS) < 1e-4, (got, want)
    assert max(got, key=got.get) == max(want, key=want.get)
    if not multilabel:
        assert abs(sum(got.values()) - 1) < 1e-6


def test_the_runner_follows_the_aspect_keeping_sample_not_the_squashing_one():
    """On a 2:1 picture the page's two samples disagree; the runner's answer is the PyTorch sample's."""
    data = _png((512, 256), seed=3)
    model = automl_model.AutoMLModel.load(build_zip())
    got = dict(model.predict(data))
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((256, 256)).crop((16, 16, 240, 240))
    squashed = io.BytesIO()
    image.save(squashed, "PNG")
    squash_reference = reference_probabilities(squashed.getvalue(), multilabel=False)  # 224 x 224: only normalises
    keep_reference = reference_probabilities(data, multilabel=False)
    assert max(abs(got[t] - keep_reference[t]) for t in LABELS) < 1e-4
    assert max(abs(got[t] - squash_reference[t]) for t in LABELS) > 1e-3


def test_the_contract_is_recognised_from_the_files(tmp_path):
    assert model_loader.recognise(build_zip()) == "azureml-automl"
    assert model_loader.recognise(onnx_exports.build_zip()) == "custom-vision"
    assert isinstance(model_loader.load_model(onnx_exports.build_zip()), ExportedModel)
    (tmp_path / "model.onnx").write_bytes(build_onnx())
    (tmp_path / "labels.json").write_text(json.dumps(list(LABELS)))
    bare = model_loader.load_model(tmp_path / "model.onnx")
    folder = model_loader.load_model(tmp_path)
    assert bare.describe() == {"sha256": hashlib.sha256(build_onnx()).hexdigest(), "labels": list(LABELS),
                               "contract": "azureml-automl", "task": "multiclass"}
    assert folder.labels == LABELS


def test_recognising_a_zip_reads_its_directory_and_loading_reads_the_file_once(tmp_path, monkeypatch):
    """The contract is told from the zip's member names: the file (up to 513 MiB) was read whole for that, then again
    by the loader."""
    from pathlib import Path

    path = tmp_path / "export.zip"
    path.write_bytes(build_zip())
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real(self))
    assert model_loader.recognise(path) == "azureml-automl" and reads == []
    model_loader.load_model(path)
    assert reads == ["export.zip"]
    path.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(ModelRefused, match=r"export\.zip"):
        model_loader.load_model(path)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


REFUSED = {
    "both label files": (lambda: build_zip(extra={"outputs/labels.txt": b"a\n"}),
                         "both labels.txt and labels.json"),
    "no label file": (lambda: _zip({"model.onnx": build_onnx()}), "neither labels.txt nor labels.json"),
    "input not input1": (lambda: build_zip(input_name="data"), "the model's inputs are data [batch, 3, 224, 224]"),
    "another crop size": (lambda: build_zip(side=256), "the input input1 is [batch, 3, 256, 256]"),
    "output not output1": (lambda: build_zip(output_name="logits"), "the model has no output output1 (its outputs: "
                                                                    "logits)"),
    "labels and outputs differ": (lambda: build_zip(labels=["a", "b"]), "with N = 2 labels in labels.json"),
    "labels not a list": (lambda: build_zip(labels={"0": "a"}), "labels.json must be a non-empty JSON list"),
    "a label twice": (lambda: build_zip(labels=["a", "b", "a", "c"]), "labels.json names a tag twice: ['a']"),
    "two models": (lambda: build_zip(extra={"other.onnx": build_onnx()}), "found 2 .onnx and 1 labels.json"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_out_of_contract_files_are_refused_naming_what_was_found(case):
    make, message = REFUSED[case]
    with pytest.raises(ModelRefused) as refused:
        model_loader.load_model(make())
    assert message in str(refused.value)


def test_a_stated_contract_is_used_when_the_files_cannot_say():
    data = build_zip(extra={"outputs/labels.txt": b"x\n"})
    assert isinstance(model_loader.load_model(data, contract="azureml-automl"), automl_model.AutoMLModel)
    with pytest.raises(ModelRefused, match="model contract 'onnx' is not one of"):
        model_loader.load_model(data, contract="onnx")


def _routed_by_automl(function_env, tmp_path, classification: str, name: str, data: bytes) -> dict:
    """``data`` uploaded as ``name`` and routed by the app with an AutoML export as CVOPS_MODEL and a policy of
    ``classification``: the result record."""
    (tmp_path / "automl.zip").write_bytes(build_zip())
    policy = tmp_path / f"{classification}.yaml"
    policy.write_text(f"version: automl-{classification}\nclassification_type: {classification}\n"
                      "default_threshold: 0.5\nreview_band: 0.1\nno_tag_passes: review\ntags: {}\n")
    function_env.set(CVOPS_MODEL=str(tmp_path / "automl.zip"), CVOPS_POLICY=str(policy),
                     VISION_PREDICTION_ENDPOINT="http://127.0.0.1:9/", VISION_PROJECT_ID="", VISION_PUBLISH_NAME="")
    function_env.upload(name, data)
    return function_env.deliver(name).record


def test_the_app_routes_by_an_automl_model_with_cvops_model_and_records_the_contract(function_env, tmp_path):
    model = build_zip()
    data = _png((400, 300), seed=5)
    record = _routed_by_automl(function_env, tmp_path, "multilabel", "cams/a.png", data)
    assert record["model"]["exported_model"] == {"sha256": hashlib.sha256(model).hexdigest(),
                                                 "labels": list(LABELS), "contract": "azureml-automl",
                                                 "task": "multilabel"}
    want = reference_probabilities(data, multilabel=True)
    got = {p["tag"]: p["probability"] for p in record["predictions"]}
    assert max(abs(got[t] - want[t]) for t in LABELS) < 1e-4, (got, want)
    assert record["predictions"][0]["tag"] == max(want, key=want.get)
    passing = sorted(t for t, p in want.items() if p >= 0.5)
    assert sorted(record["tags"]) == passing


def test_the_app_with_a_multiclass_policy_takes_softmax_of_an_automl_model_within_1e_4(function_env, tmp_path):
    # The multilabel test above shows sigmoid; a Multiclass policy must give softmax (the probabilities sum to 1).
    data = _png((300, 500), seed=8)
    record = _routed_by_automl(function_env, tmp_path, "multiclass", "cams/mc.png", data)
    assert record["model"]["exported_model"]["contract"] == "azureml-automl"
    assert record["model"]["exported_model"]["task"] == "multiclass"
    want = reference_probabilities(data, multilabel=False)
    got = {p["tag"]: p["probability"] for p in record["predictions"]}
    assert max(abs(got[t] - want[t]) for t in LABELS) < 1e-4, (got, want)
    assert abs(sum(got.values()) - 1) < 1e-4
    assert record["predictions"][0]["tag"] == max(want, key=want.get)


def test_cvops_model_contract_states_the_contract_and_a_wrong_value_stops_the_app(function_env, tmp_path):
    from cvops.errors import ConfigurationError
    from functions import config as app_config

    model = build_zip(extra={"outputs/labels.txt": b"beach\n"})  # both label files: the files cannot say
    (tmp_path / "both.zip").write_bytes(model)
    function_env.set(CVOPS_MODEL=str(tmp_path / "both.zip"), CVOPS_MODEL_CONTRACT="azureml-automl",
                     VISION_PREDICTION_ENDPOINT="http://127.0.0.1:9/", VISION_PROJECT_ID="", VISION_PUBLISH_NAME="")
    function_env.upload("b.png", _png((320, 240), seed=2))
    record = function_env.deliver("b.png").record
    assert record["model"]["exported_model"]["contract"] == "azureml-automl"
    function_env.set(CVOPS_MODEL_CONTRACT="onnx")
    with pytest.raises(ConfigurationError, match="CVOPS_MODEL_CONTRACT='onnx' is not a model contract"):
        app_config.load_config()

"""`cvops predict --model` and `cvops evaluate --model` with an Azure ML AutoML export (tests/automl_exports.py): the
probabilities of Microsoft's documented preprocessing, computed independently, the same policy and report shapes as
a Custom Vision export, and the report names the contract."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from devkit import scenes
from pipelines.cli import cli
from pipelines.evaluation import holdout_numbers
from tests.automl_exports import LABELS, build_zip, reference_probabilities

NO_SERVICE = {"CVOPS_SPEC": "", "CVOPS_PROJECT": "", "VISION_TRAINING_ENDPOINT": "", "VISION_TRAINING_KEY": "",
              "VISION_PREDICTION_ENDPOINT": "", "VISION_PREDICTION_KEY": ""}


def _png(label: str, seed: int, size=(400, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(scenes.generate((label,), seed, size=size, fmt="PNG"))).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "automl.zip").write_bytes(build_zip())
    for tag in LABELS:
        (tmp_path / "holdout" / tag).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "holdout" / tag / f"{i}.png").write_bytes(_png(tag, i, size=(300 + 40 * i, 260)))
    (tmp_path / "multilabel.yaml").write_text("version: ml-1\nclassification_type: multilabel\n"
                                              "default_threshold: 0.5\nreview_band: 0.1\nno_tag_passes: review\n"
                                              "tags: {}\n")
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), env=NO_SERVICE, catch_exceptions=False)


@pytest.mark.parametrize("multilabel", [False, True], ids=["multiclass", "multilabel-policy"])
def test_predict_with_an_automl_model_gives_the_documented_probabilities_and_names_the_contract(workdir, multilabel):
    image = "holdout/forest/1.png"
    args = ["predict", "--model", "automl.zip", image, "--json"] + (["--policy", "multilabel.yaml"] if multilabel else [])
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"]["contract"] == "azureml-automl"
    assert doc["model"]["task"] == ("multilabel" if multilabel else "multiclass")
    want = reference_probabilities((workdir / image).read_bytes(), multilabel=multilabel)
    got = {r["tag"]: r["probability"] for r in doc["predictions"]}
    assert max(abs(got[t] - want[t]) for t in LABELS) < 1e-4, (got, want)
    assert doc["predictions"][0]["tag"] == max(want, key=want.get)


def test_evaluate_with_an_automl_model_measures_the_documented_probabilities(workdir):
    result = invoke("evaluate", "--model", "automl.zip", "--holdout", "holdout", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"]["contract"] == "azureml-automl" and doc["service"] is None
    tags = sorted(LABELS)  # the holdout folder lists images by path, tag folders alphabetically
    files = sorted((workdir / "holdout").rglob("*.png"))
    y = np.array([[1.0 if f.parent.name == t else 0.0 for t in LABELS] for f in files])
    refs = [reference_probabilities(f.read_bytes(), multilabel=False) for f in files]
    s = np.array([[r[t] for t in LABELS] for r in refs])
    want = holdout_numbers(y, s, tag_names=list(LABELS), threshold=0.5, multiclass=True, target_precision=None,
                           target_recall=None)
    ev = doc["holdout"]
    assert ev["n_images"] == len(files) == 12 and sorted(t["tag"] for t in ev["tags"]) == tags
    assert ev["accuracy"] == pytest.approx(want["accuracy"])
    assert ev["mean_average_precision"] == pytest.approx(want["mean_average_precision"], abs=1e-9)
    assert ev["confusion_matrix"] == want["confusion_matrix"]


def test_an_out_of_contract_automl_file_is_one_line_naming_what_was_found_exit_2(workdir):
    (workdir / "bad.zip").write_bytes(build_zip(input_name="image"))
    result = invoke("predict", "--model", "bad.zip", "holdout/city/0.png")
    assert result.exit_code == 2
    assert "--model bad.zip" in result.stderr and "the model's inputs are image [batch, 3, 224, 224]" in result.stderr


def test_a_model_whose_files_cannot_say_is_refused_unless_its_contract_is_stated(workdir):
    (workdir / "both.zip").write_bytes(build_zip(extra={"outputs/labels.txt": b"beach\n"}))
    refused = invoke("predict", "--model", "both.zip", "holdout/city/0.png")
    assert refused.exit_code == 2 and "both labels.txt and labels.json" in refused.stderr
    stated = invoke("predict", "--model", "both.zip", "--model-contract", "azureml-automl", "holdout/city/0.png",
                    "--json")
    assert stated.exit_code == 0, stated.output
    assert json.loads(stated.stdout)["model"]["contract"] == "azureml-automl"
    evaluated = invoke("evaluate", "--model", "both.zip", "--model-contract", "azureml-automl", "--holdout", "holdout",
                       "--json")
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["holdout"]["n_images"] == 12

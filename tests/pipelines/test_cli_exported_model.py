"""`cvops predict --model` and `cvops evaluate --model` on an exported model built in Custom Vision's format: the
same policy decision and report shapes as the service path, with no service configured at all."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pipelines.cli import cli
from tests.onnx_exports import build_zip, solid_jpeg

# No endpoint, no key: anything that tried to reach a service would fail.
NO_SERVICE = {"CVOPS_SPEC": "", "CVOPS_PROJECT": "", "VISION_TRAINING_ENDPOINT": "", "VISION_TRAINING_KEY": "",
              "VISION_PREDICTION_ENDPOINT": "", "VISION_PREDICTION_KEY": ""}
COLOURS = {"red": (250, 5, 5), "green": (5, 250, 5), "blue": (5, 5, 250)}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.zip").write_bytes(build_zip())
    (tmp_path / "bgr.zip").write_bytes(build_zip(pixel_format="Bgr8"))
    for tag, colour in COLOURS.items():
        (tmp_path / "holdout" / tag).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "holdout" / tag / f"{i}.png").write_bytes(solid_jpeg(tuple(c + i for c in colour)))
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), env=NO_SERVICE, catch_exceptions=False)


def test_predict_with_a_model_routes_with_the_policy_and_names_the_model(workdir):
    result = invoke("predict", "--model", "model.zip", "holdout/red/0.png", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "accepted" and doc["tags"] == ["red"] and doc["passing"] == ["red"]
    assert doc["predictions"][0] == {"tag": "red", "probability": pytest.approx(1.0), "threshold": 0.5, "passes": True}
    assert len(doc["model"]["sha256"]) == 64 and doc["model"]["labels"] == ["red", "green", "blue"]
    swapped = json.loads(invoke("predict", "--model", "bgr.zip", "holdout/red/0.png", "--json").stdout)
    assert swapped["tags"] == ["blue"]  # the metadata's channel order, not a guess


def test_predict_with_a_model_and_a_strict_policy_sends_it_to_review(workdir):
    (workdir / "soft.zip").write_bytes(build_zip(pixel_range="Normalized_0_1"))  # a pure colour scores 0.576
    (workdir / "policy.json").write_text(json.dumps({"version": "strict", "default_threshold": 0.9,
                                                     "review_band": 0.5}))
    doc = json.loads(invoke("predict", "--model", "soft.zip", "holdout/green/1.png", "--policy", "policy.json",
                            "--json").stdout)
    assert doc["outcome"] == "review" and doc["policy"]["version"] == "strict"
    assert doc["predictions"][0]["tag"] == "green" and doc["predictions"][0]["probability"] == pytest.approx(0.57, abs=0.01)


def test_a_model_the_runner_cannot_interpret_is_one_line_naming_what_it_found_exit_2(workdir):
    (workdir / "gray.zip").write_bytes(build_zip(pixel_format="Gray8"))
    result = invoke("predict", "--model", "gray.zip", "holdout/red/0.png")
    assert result.exit_code == 2
    assert "--model gray.zip" in result.stderr and "Image.BitmapPixelFormat is 'Gray8'" in result.stderr


def test_evaluate_with_a_model_measures_the_holdout_in_the_report_format(workdir):
    result = invoke("evaluate", "--model", "model.zip", "--holdout", "holdout", "--report", "rep", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    ev = doc["holdout"]
    assert doc["service"] is None and doc["model"]["labels"] == ["red", "green", "blue"]
    assert ev["n_images"] == 9 and ev["accuracy"] == 1.0 and ev["mean_average_precision"] == 1.0
    assert ev["confusion_matrix"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert json.loads((workdir / "rep" / "evaluation.json").read_text())["n_images"] == 9
    swapped = json.loads(invoke("evaluate", "--model", "bgr.zip", "--holdout", "holdout", "--json").stdout)
    assert swapped["holdout"]["accuracy"] == pytest.approx(3 / 9)  # only green survives the swap


def test_evaluate_with_a_model_needs_a_holdout_set(workdir):
    result = invoke("evaluate", "--model", "model.zip")
    assert result.exit_code == 2 and "--holdout" in result.stderr

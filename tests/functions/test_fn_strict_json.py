"""A model answering NaN or +-inf sends the image to review, and everything written about it is still strict JSON:
the record, the sidecar, the HTTP answer and `cvops predict --json` parse with a reader that refuses ``NaN`` and
``Infinity`` (as JavaScript, Go, Power BI and jq do), and say in ``probability_not_finite`` what the model answered.
"""

from __future__ import annotations

import math

import azure.functions as func
import pytest
from click.testing import CliRunner
from fn_helpers import registered
from hypothesis import given
from hypothesis import strategies as st

from cvops import finite_json
from functions.naming import SIDECAR_SUFFIX
from pipelines.cli import cli
from tests.onnx_exports import build_zip, solid_jpeg

NO_RED = solid_jpeg((0, 200, 90))  # the test model answers its special value for a picture with no red at all
SPECIALS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _strict(raw: bytes | str) -> dict:
    return finite_json.loads(raw)  # json.loads with parse_constant that raises


def _assert_not_finite_predictions(doc: dict, word: str) -> None:
    assert doc["predictions"], doc
    for prediction in doc["predictions"]:
        assert prediction["probability"] is None and prediction["probability_not_finite"] == word


@pytest.mark.parametrize("word", SPECIALS)
def test_a_non_finite_answer_goes_to_review_and_the_record_and_sidecar_are_strict_json(function_env, tmp_path, word):
    (tmp_path / "model.zip").write_bytes(build_zip(special=SPECIALS[word]))
    function_env.set(CVOPS_MODEL=str(tmp_path / "model.zip"), VISION_PREDICTION_ENDPOINT="http://127.0.0.1:9/",
                     VISION_PROJECT_ID="", VISION_PUBLISH_NAME="")
    function_env.upload("cams/green.png", NO_RED)
    function_env.deliver("cams/green.png")

    [record_name] = function_env.names("results")
    record = _strict(function_env.read("results", record_name))
    assert record["outcome"] == "review" and record["reasons"][0]["code"] == "invalid_score"
    _assert_not_finite_predictions(record, word)
    sidecar = _strict(function_env.read("review", f"cams/green.png{SIDECAR_SUFFIX}"))
    _assert_not_finite_predictions(sidecar, word)
    assert sidecar["key"] == record["key"]


def test_the_http_answer_for_a_non_finite_score_is_strict_json(function_env, tmp_path):
    (tmp_path / "model.zip").write_bytes(build_zip(special=math.nan))
    function_env.set(CVOPS_MODEL=str(tmp_path / "model.zip"), VISION_PREDICTION_ENDPOINT="http://127.0.0.1:9/",
                     VISION_PROJECT_ID="", VISION_PUBLISH_NAME="")
    request = func.HttpRequest(method="POST", url="/api/classify", body=NO_RED, params={}, headers={})
    response = registered("classify_http")(request)
    assert response.status_code == 200
    answer = _strict(response.get_body())
    assert answer["outcome"] == "review"
    _assert_not_finite_predictions(answer, "NaN")


def test_cvops_predict_json_for_a_non_finite_score_is_strict_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.zip").write_bytes(build_zip(special=-math.inf))
    (tmp_path / "green.png").write_bytes(NO_RED)
    env = {"CVOPS_SPEC": "", "CVOPS_PROJECT": "", "VISION_TRAINING_ENDPOINT": "", "VISION_TRAINING_KEY": "",
           "VISION_PREDICTION_ENDPOINT": "", "VISION_PREDICTION_KEY": ""}
    result = CliRunner().invoke(cli, ["predict", "--model", "model.zip", "green.png", "--json"], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = _strict(result.stdout)
    assert doc["outcome"] == "review"
    assert "-Infinity" in result.stdout and "probability_not_finite" in result.stdout


_LEAVES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=4), st.none(),
                    st.booleans())
_VALUES = st.recursive(_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=4), inner, max_size=4)),
                       max_leaves=20)


@given(_VALUES)
def test_any_value_dumps_to_strict_json_and_finite_numbers_survive_exactly(value):
    text = finite_json.dumps(value)
    parsed = finite_json.loads(text)
    assert parsed == finite_json.finite(value)  # which holds no NaN, so == compares everything
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                assert parsed[key] is None and parsed[key + "_not_finite"] in SPECIALS



def test_an_evaluation_report_with_a_non_finite_number_is_written_as_strict_json(tmp_path):
    """Before: ``allow_nan=False`` alone made the report writer raise on one NaN (here a numpy one from a model)."""
    import numpy as np

    from pipelines.metrics import evaluate_scores
    from pipelines.report import write_reports

    tags = ["beach", "forest"]
    truth = np.array([[1, 0], [0, 1], [1, 0]])
    evaluation = evaluate_scores(truth, np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), tags, 0.5, True).to_dict()
    evaluation["extra"] = {"mean_score_of_a_nan_model": np.float32("nan"), "worst": -math.inf}
    paths = write_reports(evaluation, tmp_path, title="t")
    extra = _strict(paths["json"].read_text())["extra"]
    assert extra == {"mean_score_of_a_nan_model": None, "mean_score_of_a_nan_model_not_finite": "NaN",
                     "worst": None, "worst_not_finite": "-Infinity"}

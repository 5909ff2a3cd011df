"""Issue 10 end to end against the local service and Azurite: `cvops export` downloads a compact-domain iteration's
ONNX export, `cvops predict --model` gives the service's answer in this process, and the Function App with CVOPS_MODEL
routes the same image to the same tag with no prediction endpoint reachable."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from click.testing import CliRunner
from fn_helpers import CLASSES, train_and_publish

from cvops import clients
from devkit import scenes
from pipelines.cli import cli


@pytest.fixture(scope="module")
def compact_project(local_cv, training_client):
    entries = scenes.dataset(CLASSES, 6, seed=41, size=(256, 192))
    return train_and_publish(training_client, local_cv, name="fn-compact", entries=entries,
                             classification_type="Multiclass", tags=CLASSES, domain="General (compact)")


def cli_env(local_cv, azurite) -> dict[str, str]:
    return {"VISION_TRAINING_ENDPOINT": local_cv.endpoint, "VISION_TRAINING_KEY": local_cv.training_key,
            "VISION_PREDICTION_ENDPOINT": local_cv.endpoint, "VISION_PREDICTION_KEY": local_cv.prediction_key,
            "VISION_PREDICTION_RESOURCE_ID": local_cv.prediction_resource_id,
            "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "AZURE_STORAGE_ACCOUNT_URL": "",
            "CVOPS_SPEC": "", "CVOPS_PROJECT": "", "CVOPS_TIER": ""}


@pytest.mark.parametrize(("flavor", "tolerance"), [(None, 0.01), ("OnnxFloat16", 0.02)])
def test_export_then_predict_with_the_model_then_route_with_it_agree_with_the_service(
        function_env, local_cv, azurite, compact_project, tmp_path, flavor, tolerance):
    env = cli_env(local_cv, azurite)
    out = tmp_path / "model.zip"
    args = ["export", "--project", compact_project.project_id, "--platform", "ONNX", "--out", str(out), "--json"]
    exported = CliRunner().invoke(cli, args + (["--flavor", flavor] if flavor else []), env=env,
                                  catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    doc = json.loads(exported.stdout)
    assert doc["model"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert sorted(doc["model"]["labels"]) == sorted(CLASSES) and doc["bytes"] == out.stat().st_size

    image = scenes.generate("forest", 77, size=(320, 240))
    (tmp_path / "photo.jpg").write_bytes(image)
    service = clients.prediction_client(local_cv.endpoint, local_cv.prediction_key).classify_image_with_no_store(
        compact_project.project_id, compact_project.publish_name, io.BytesIO(image))
    expected = {p.tag_name: p.probability for p in service.predictions}
    predicted = CliRunner().invoke(cli, ["predict", "--model", str(out), str(tmp_path / "photo.jpg"), "--json"],
                                   env=env, catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    rows = json.loads(predicted.stdout)["predictions"]
    assert rows[0]["tag"] == max(expected, key=expected.get)
    assert all(abs(r["probability"] - expected[r["tag"]]) <= tolerance for r in rows), (rows, expected)

    function_env.set(CVOPS_MODEL=str(out), VISION_PREDICTION_ENDPOINT="http://127.0.0.1:9/", VISION_PROJECT_ID="",
                     VISION_PUBLISH_NAME="")
    function_env.upload("cams/photo.jpg", image)
    record = function_env.deliver("cams/photo.jpg").record
    assert record["model"] == {"exported_model": {"sha256": doc["model"]["sha256"], "labels": doc["model"]["labels"],
                                                  "contract": "custom-vision"}}
    assert record["predictions"][0]["tag"] == rows[0]["tag"]
    assert abs(record["predictions"][0]["probability"] - rows[0]["probability"]) < 1e-5

"""The Function App with CVOPS_MODEL: the registered blob trigger on Azurite routes images by an exported model run
in-process, with no prediction endpoint reachable; the record names the model's SHA-256 and labels."""

from __future__ import annotations

import hashlib

import pytest
from fn_helpers import registered

from cvops.errors import ConfigurationError
from functions import exported_model
from functions.handler import observe
from functions.naming import SIDECAR_SUFFIX
from tests.onnx_exports import LABELS, build_zip, solid_jpeg

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: any prediction call would fail


def _model_mode(env, value: str) -> None:
    env.set(CVOPS_MODEL=value, VISION_PREDICTION_ENDPOINT=UNREACHABLE, VISION_PROJECT_ID="", VISION_PUBLISH_NAME="")


def test_images_are_routed_by_the_exported_model_with_no_prediction_endpoint(function_env, tmp_path):
    data = build_zip(size=11)
    (tmp_path / "model.zip").write_bytes(data)
    _model_mode(function_env, str(tmp_path / "model.zip"))
    sessions = exported_model.sessions_created()
    red, blue = solid_jpeg((250, 5, 5), fmt="PNG"), solid_jpeg((5, 5, 250), fmt="JPEG")
    function_env.upload("cams/red.png", red)
    function_env.upload("cams/blue.jpg", blue)
    first = function_env.deliver("cams/red.png").record
    second = function_env.deliver("cams/blue.jpg").record

    expected = {"exported_model": {"sha256": hashlib.sha256(data).hexdigest(), "labels": list(LABELS),
                                   "contract": "custom-vision"}}
    assert first["model"] == expected and second["model"] == expected
    assert first["outcome"] == "accepted" and first["tags"] == ["red"]
    assert second["outcome"] == "accepted" and second["tags"] == ["blue"]
    assert first["predictions"][0]["tag"] == "red" and first["predictions"][0]["probability"] > 0.9
    assert function_env.names("accepted") == ["blue/cams/blue.jpg", f"blue/cams/blue.jpg{SIDECAR_SUFFIX}",
                                                "red/cams/red.png", f"red/cams/red.png{SIDECAR_SUFFIX}"]
    assert sorted(r["blob"]["name"] for r in function_env.records()) == ["cams/blue.jpg", "cams/red.png"]
    assert exported_model.sessions_created() - sessions == 1  # one session for the process, not one per image
    again = function_env.deliver("cams/red.png")  # exactly once: a redelivery routes nothing new
    assert again.duplicate and len(function_env.names("accepted")) == 4


def test_the_model_can_be_a_blob_read_with_the_apps_storage(function_env, blob_service):
    data = build_zip(size=9, pixel_format="Bgr8")
    container = f"{function_env.incoming}-models"
    blob_service.create_container(container)
    try:
        blob_service.get_blob_client(container, "exports/model.zip").upload_blob(data)
        _model_mode(function_env, f"az://{container}/exports/model.zip")
        function_env.upload("a.png", solid_jpeg((250, 5, 5)))
        record = function_env.deliver("a.png").record
    finally:
        blob_service.delete_container(container)
    assert record["model"]["exported_model"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["tags"] == ["blue"]  # Bgr8: the red channel is fed third


def test_a_model_the_runner_cannot_interpret_stops_the_app_and_routes_nothing(function_env, tmp_path):
    (tmp_path / "model.zip").write_bytes(build_zip(pixel_format="Gray8"))
    _model_mode(function_env, str(tmp_path / "model.zip"))
    function_env.upload("a.png", solid_jpeg((250, 5, 5)))
    with pytest.raises(ConfigurationError, match=r"CVOPS_MODEL.*Image.BitmapPixelFormat is 'Gray8'"):
        function_env.deliver("a.png")
    assert function_env.names("accepted") == [] and function_env.names("results") == []
    assert function_env.names("incoming") == ["a.png"]


def test_with_an_in_process_model_a_first_delivery_costs_three_storage_calls_and_a_redelivery_writes_nothing(
        function_env, tmp_path):
    """No read before the record's create (judging again is cheaper than a read on every image); a duplicate is
    still found by the create that fails, and adopts the record in force."""
    (tmp_path / "model.zip").write_bytes(build_zip(size=11))
    _model_mode(function_env, str(tmp_path / "model.zip"))
    function_env.upload("cams/red.jpg", solid_jpeg((250, 5, 5)))
    first = function_env.deliver("cams/red.jpg")
    assert not first.duplicate and first.storage_calls == 3  # record, copy, sidecar
    again = function_env.deliver("cams/red.jpg")
    assert again.duplicate and again.written == () and again.record == first.record
    assert len(function_env.records()) == 1 and len(function_env.names("accepted")) == 2


def test_with_an_in_process_model_eight_concurrent_deliveries_of_one_version_route_it_once(function_env, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    (tmp_path / "model.zip").write_bytes(build_zip(size=11))
    _model_mode(function_env, str(tmp_path / "model.zip"))
    function_env.upload("cams/blue.jpg", solid_jpeg((5, 5, 250)))
    streams = [function_env.client("cams/blue.jpg") for _ in range(8)]
    outcomes: list = []
    with observe(outcomes.append), ThreadPoolExecutor(8) as pool:
        list(pool.map(registered("route_new_blob"), streams))
    assert len(outcomes) == 8
    assert sum(not o.duplicate for o in outcomes) == 1
    assert {o.record["key"] for o in outcomes} == {outcomes[0].record["key"]}
    assert len(function_env.records()) == 1
    assert function_env.names("accepted") == ["blue/cams/blue.jpg", f"blue/cams/blue.jpg{SIDECAR_SUFFIX}"]

"""Multilabel routing on a Multilabel project, and the HTTP trigger's answers."""

from __future__ import annotations

import json

import azure.functions as func
import pytest
from fn_helpers import registered, scene

from functions.naming import SIDECAR_SUFFIX
from pipelines.run_local import load_app, registered_functions

MULTILABEL_POLICY = {"version": "ml", "classification_type": "multilabel", "default_threshold": 0.3,
                     "review_band": 0.0}


@pytest.fixture
def multilabel_env(function_env, multilabel_project):
    function_env.set(VISION_PROJECT_ID=multilabel_project.project_id,
                     VISION_PUBLISH_NAME=multilabel_project.publish_name,
                     CVOPS_POLICY=json.dumps(MULTILABEL_POLICY))
    return function_env


def test_multilabel_copies_the_image_under_every_tag_over_its_threshold(multilabel_env):
    data = scene(("beach", "forest"), seed=2)
    multilabel_env.upload("coast.jpg", data)
    record = multilabel_env.deliver("coast.jpg").record
    passing = sorted(p["tag"] for p in record["predictions"] if p["probability"] >= 0.3)
    assert record["outcome"] == "accepted" and sorted(record["tags"]) == passing
    assert {"beach", "forest"} <= set(passing)
    expected = sorted([f"{tag}/coast.jpg" for tag in passing] + [f"{tag}/coast.jpg{SIDECAR_SUFFIX}" for tag in passing])
    assert multilabel_env.names("accepted") == expected
    assert all(multilabel_env.read("accepted", f"{tag}/coast.jpg") == data for tag in passing)
    assert len(multilabel_env.records()) == 1


def post(body: bytes, **params) -> func.HttpResponse:
    request = func.HttpRequest(method="POST", url="/api/classify", body=body, params=params,
                               headers={"Content-Type": "application/octet-stream"})
    return registered("classify_http")(request)


def test_http_returns_the_decision_as_json_and_writes_nothing(function_env):
    response = post(scene("beach", seed=4), name="from-logic-app")
    assert response.status_code == 200 and response.mimetype == "application/json"
    answer = json.loads(response.get_body())
    assert answer["outcome"] == "accepted" and answer["tags"] == ["beach"]
    assert answer["predictions"][0]["tag"] == "beach" and answer["policy"]["version"] == "default-1"
    assert all(function_env.names(k) == [] for k in ("accepted", "review", "results"))


def test_http_says_why_an_image_is_unusable_with_422(function_env):
    response = post(b"GIF89a but not really")
    assert response.status_code == 422
    answer = json.loads(response.get_body())
    assert answer["outcome"] == "quarantine" and answer["reasons"][0]["code"] == "not_an_image"


def test_http_without_a_body_is_a_400():
    assert post(b"").status_code == 400


def test_http_with_a_wrong_key_is_a_500_naming_the_setting_not_the_key(function_env):
    function_env.set(VISION_PREDICTION_KEY="definitely-wrong-key")
    response = post(scene("city"))
    assert response.status_code == 500
    answer = json.loads(response.get_body())
    assert answer["setting"] == "VISION_PREDICTION_KEY"
    assert "definitely-wrong-key" not in response.get_body().decode()


def test_http_is_registered_with_function_key_auth_on_post_classify():
    function = registered_functions(load_app())["classify_http"]
    assert json.loads(function.get_function_json())["bindings"][0] == {
        "direction": "IN", "type": "httpTrigger", "name": "req", "methods": ["POST"], "authLevel": "FUNCTION",
        "route": "classify"}

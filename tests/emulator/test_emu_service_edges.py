"""What every caller must survive: wrong keys (401), rate limits (429 + Retry-After), injected faults (503), latency;
and the command line's promises: state kept across restarts, interrupted training marked Failed."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from azure.cognitiveservices.vision.customvision.prediction.models import (
    CustomVisionErrorException as PredictionError,
)
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException
from cv_samples import png, raw, unique_name
from msrest.authentication import ApiKeyCredentials

from devkit.local_services import REPO_ROOT, start_local_custom_vision
from emulator.learning_interface import ModuleLearning
from emulator.models import RESTART_REASON, CustomVisionBackend, now
from emulator.store import Storage

AZURE_401 = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
             "for an active subscription and use a correct regional API endpoint for your resource.")


def test_wrong_training_key_raises_custom_vision_error_401(local_cv):
    client = CustomVisionTrainingClient(local_cv.endpoint, ApiKeyCredentials(in_headers={"Training-key": "nope"}))
    with pytest.raises(CustomVisionErrorException) as exc:
        client.get_projects()
    assert exc.value.response.status_code == 401
    assert exc.value.response.json() == {"error": {"code": "401", "message": AZURE_401}}  # the gateway's shape


def test_missing_prediction_key_is_401_and_header_names_are_case_insensitive(local_cv):
    assert raw(local_cv, "GET", "/domains", key="").status_code == 401
    response = raw(local_cv, "GET", "/domains", key="", headers={"training-key": local_cv.training_key})
    assert response.status_code == 200
    assert raw(local_cv, "POST", "/00000000-0000-0000-0000-000000000000/classify/iterations/x/image",
               api="prediction", key="wrong").status_code == 401


def test_training_key_does_not_open_prediction(local_cv):
    response = raw(local_cv, "POST", "/00000000-0000-0000-0000-000000000000/classify/iterations/x/image",
                   api="prediction", key=local_cv.training_key)
    assert response.status_code == 401


def test_unknown_path_is_404_json(local_cv):
    response = raw(local_cv, "GET", "/no/such/thing")
    assert response.status_code == 404 and response.json()["code"] == "NotFound"


def test_prediction_rate_limit_answers_429_with_retry_after(start_local_cv):
    service = start_local_cv(prediction_tps=2)
    path = "/00000000-0000-0000-0000-000000000000/classify/iterations/x/image"
    answers = [raw(service, "POST", path, api="prediction", data=png()) for _ in range(4)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert limited[0].headers["Retry-After"] == "1"
    assert limited[0].json()["message"] == (
        "Requests to the ClassifyImage Operation under Custom Vision Prediction API have exceeded rate limit of your "
        "current Prediction S0 pricing tier. Please retry after 1 second.")
    time.sleep(1.05)
    assert raw(service, "POST", path, api="prediction", data=png()).status_code == 404  # allowed again


def test_training_rate_limit_applies_to_every_training_call_and_sdk_raises(start_local_cv):
    service = start_local_cv(training_tps=1)
    client = CustomVisionTrainingClient(service.endpoint,
                                        ApiKeyCredentials(in_headers={"Training-key": service.training_key}))
    client.config.retry_policy.retries = 0  # msrest would otherwise wait out Retry-After and succeed
    with pytest.raises(CustomVisionErrorException) as exc:
        for _ in range(3):
            client.get_domains()
    assert exc.value.response.status_code == 429
    assert "GetDomains Operation under Custom Vision Training API" in exc.value.response.json()["message"]


def test_fault_rate_one_makes_every_call_a_503_with_json_body(start_local_cv):
    service = start_local_cv(fault_rate=1.0)
    response = raw(service, "GET", "/projects")
    assert response.status_code == 503
    assert response.json()["code"] == "ErrorUnknown" and "fault" in response.json()["message"]
    prediction = raw(service, "POST", "/00000000-0000-0000-0000-000000000000/classify/iterations/x/image",
                     api="prediction", data=png())
    assert prediction.status_code == 503 and prediction.json()["code"] == "ErrorPredictionServiceUnavailable"


def test_latency_is_added_to_every_call(start_local_cv):
    service = start_local_cv(latency_ms=300)
    started = time.monotonic()
    assert raw(service, "GET", "/domains").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_state_survives_a_restart_with_a_data_dir(tmp_path):
    data_dir = tmp_path / "cv"
    first = start_local_custom_vision(data_dir=data_dir, log_dir=tmp_path)
    try:
        client = CustomVisionTrainingClient(first.endpoint,
                                            ApiKeyCredentials(in_headers={"Training-key": first.training_key}))
        project = client.create_project(unique_name("kept"))
        tag = client.create_tag(project.id, "red")
        image = client.create_images_from_data(project.id, png(31, 31), tag_ids=[tag.id]).images[0].image
    finally:
        first.stop()
    second = start_local_custom_vision(data_dir=data_dir, log_dir=tmp_path)
    try:
        client = CustomVisionTrainingClient(second.endpoint,
                                            ApiKeyCredentials(in_headers={"Training-key": second.training_key}))
        assert client.get_project(project.id).name == project.name
        assert client.get_tag(project.id, tag.id).image_count == 1
        again = client.get_images_by_ids(project.id, image_ids=[image.id])[0]
        assert requests.get(again.original_image_uri, timeout=10).content == png(31, 31)
    finally:
        second.stop()


def test_iteration_training_when_the_process_died_is_failed_on_restart(tmp_path):
    storage = Storage(tmp_path)
    storage.db.execute("INSERT INTO projects VALUES ('p', 'p', '', 'ee85a74c-405e-4adc-bb47-ffa8ca0c9f31', "
                       "'Multiclass', '[]', ?, ?)", (now(), now()))
    storage.db.execute("INSERT INTO iterations (id, project_id, name, status, created, last_modified, training_type, "
                       "fingerprint) VALUES ('i', 'p', 'Iteration 1', 'Training', ?, ?, 'Regular', 'x')", (now(), now()))
    storage.close()
    backend = CustomVisionBackend(Storage(tmp_path), ModuleLearning())
    iteration = backend.get_iteration("p", "i")
    assert (iteration["status"], iteration["trainingErrorDetails"]) == ("Failed", RESTART_REASON)


def test_in_memory_service_leaves_no_files(tmp_path):
    service = start_local_custom_vision(log_dir=tmp_path / "log")
    try:
        client = CustomVisionTrainingClient(service.endpoint,
                                            ApiKeyCredentials(in_headers={"Training-key": service.training_key}))
        project = client.create_project(unique_name("gone"))
        client.create_images_from_data(project.id, png(32, 32))
    finally:
        service.stop()
    assert [p.name for p in tmp_path.iterdir()] == ["log"]


def test_command_line_help_documents_the_budget_scaling():
    proc = subprocess.run([sys.executable, "-m", "emulator", "--help"], capture_output=True, text=True, timeout=30,
                          cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--in-memory" in proc.stdout and "1 budget hour" in proc.stdout


def test_port_in_use_is_a_clear_error(local_cv):
    proc = subprocess.run([sys.executable, "-m", "emulator", "--in-memory", "--port", str(local_cv.port)],
                          capture_output=True, text=True, timeout=30, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 2 and "Choose another --port" in proc.stderr


def test_prediction_error_type_is_the_prediction_sdks(prediction_client, local_cv):
    with pytest.raises(PredictionError) as exc:
        prediction_client.classify_image("00000000-0000-0000-0000-000000000000", "x", png())
    assert exc.value.error.code == "NotFoundProject"

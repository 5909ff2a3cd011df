"""Limits on training, through the official SDK: 20 iterations kept per project, and TrainProject's rate limit.

Both are quotas a production pipeline hits (a nightly retrain fills the 20 slots in three weeks; a CI matrix that
trains several projects at once meets the per-second limit), so the local service must answer them as Azure does.
"""

from __future__ import annotations

import time

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from cv_samples import project_with_images, unique_name
from msrest.authentication import ApiKeyCredentials

from devkit import scenes

LIMIT = 20  # iterations kept per project (F0 and S0 alike)


def wait_done(trainer, project_id: str, iteration_id: str, timeout: float = 30.0) -> str:
    """Poll tightly: these projects train in a few milliseconds, and the test trains twenty of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = trainer.get_iteration(project_id, iteration_id).status
        if status != "Training":
            return status
        time.sleep(0.02)
    raise AssertionError(f"iteration {iteration_id} still training after {timeout} s")


def test_the_21st_training_is_refused_until_an_iteration_is_deleted(training_client):
    p, _ = project_with_images(training_client, {"beach": 5, "forest": 5}, seed=21)
    ids = []
    for _ in range(LIMIT):
        iteration = training_client.train_project(p.id, force_train=True)
        assert wait_done(training_client, p.id, iteration.id) == "Completed"
        ids.append(iteration.id)
    assert len(training_client.get_iterations(p.id)) == LIMIT

    with pytest.raises(CustomVisionErrorException) as refused:
        training_client.train_project(p.id, force_train=True)
    assert (refused.value.response.status_code, refused.value.error.code) == (
        400, "BadRequestExceedIterationPerProjectLimit")
    assert "delete" in refused.value.error.message.lower()
    assert len(training_client.get_iterations(p.id)) == LIMIT  # the refused call left nothing behind

    training_client.delete_iteration(p.id, ids[0])
    again = training_client.train_project(p.id, force_train=True)
    assert wait_done(training_client, p.id, again.id) == "Completed"
    assert again.name == f"Iteration {LIMIT + 1}"  # names keep counting up; a deleted name is not reused


def paced(call, *args, **kwargs):
    """Call, and on 429 wait the Retry-After the service sent and call again (what any caller must do)."""
    for _ in range(10):
        try:
            return call(*args, **kwargs)
        except CustomVisionErrorException as exc:
            if exc.response.status_code != 429:
                raise
            time.sleep(float(exc.response.headers["Retry-After"]))
    raise AssertionError("still rate limited after 10 tries")


def test_a_burst_of_train_calls_gets_429_with_retry_after_naming_train_project(start_local_cv):
    service = start_local_cv(training_tps=2)
    trainer = CustomVisionTrainingClient(service.endpoint,
                                         ApiKeyCredentials(in_headers={"Training-key": service.training_key}))
    trainer.config.retry_policy.retries = 0  # msrest would otherwise wait out a 429 itself
    # Set-up calls count against the same limit, so they are paced by the Retry-After answers themselves.
    project = paced(trainer.create_project, unique_name("tps"))
    tags = [paced(trainer.create_tag, project.id, label) for label in ("beach", "forest")]
    entries = [ImageFileCreateEntry(name=f"{t.name}{i}.jpg", contents=scenes.generate(t.name, 50 + i), tag_ids=[t.id])
               for t in tags for i in range(5)]
    assert paced(trainer.create_images_from_files, project.id, ImageFileCreateBatch(images=entries)).is_batch_successful
    time.sleep(1.05)  # an empty window: the burst below is all TrainProject

    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(trainer.train_project(project.id, force_train=True).status)
        except CustomVisionErrorException as exc:
            outcomes.append(exc)
    limited = [o for o in outcomes if isinstance(o, CustomVisionErrorException) and o.response.status_code == 429]
    assert outcomes[0] == "Training"
    assert len(limited) == 2, outcomes  # 2 calls per second pass (the 2nd is refused: already training), 2 do not
    response = limited[0].response
    assert int(response.headers["Retry-After"]) >= 1
    assert "TrainProject Operation under Custom Vision Training API" in response.json()["message"]

    time.sleep(float(response.headers["Retry-After"]))
    iterations = paced(trainer.get_iterations, project.id)
    assert len(iterations) == 1  # refused calls created no iteration

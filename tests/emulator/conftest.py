"""Fixtures of the local Custom Vision service's own tests (the shared ones, `local_cv` and the clients, are in
tests/conftest.py): a trained, published project reused by the prediction tests, and an in-process service for tests
that need to look at its state directly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import Iteration, Project, Tag
from cv_samples import project_with_images, unique_name, wait_trained

from emulator.server import RunningService, serve


@dataclass
class PublishedProject:
    project: Project
    tags: dict[str, Tag]
    iteration: Iteration
    publish_name: str


@pytest.fixture(scope="session")
def published(training_client: CustomVisionTrainingClient, local_cv) -> PublishedProject:
    """A Multiclass beach/forest project trained on 8 generated images per tag and published."""
    project, tags = project_with_images(training_client, {"beach": 8, "forest": 8}, seed=7)
    iteration = wait_trained(training_client, project.id, training_client.train_project(project.id).id)
    assert iteration.status == "Completed", iteration.as_dict()
    name = unique_name("model")
    assert training_client.publish_iteration(project.id, iteration.id, name, local_cv.prediction_resource_id) is True
    return PublishedProject(project, tags, training_client.get_iteration(project.id, iteration.id), name)


@pytest.fixture
def in_process_cv() -> Iterator[RunningService]:
    """The service in this process (in memory), for tests that need its internals; stopped after the test."""
    service = serve()
    try:
        yield service
    finally:
        service.stop()

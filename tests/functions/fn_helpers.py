"""Helpers of the Function App's tests (importable by test modules, unlike conftest.py, whose name every test folder
shares): trained projects on the local service, the registered functions, and sample scenes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry

from cvops import clients, retry
from devkit import scenes
from pipelines.run_local import load_app, user_function

CLASSES = ("beach", "forest", "city")


@dataclass(frozen=True)
class TrainedProject:
    project_id: str
    publish_name: str
    tags: tuple[str, ...]


def train_and_publish(training_client, service, *, name: str, entries: list, classification_type: str,
                      tags: tuple[str, ...], domain: str = "General") -> TrainedProject:
    """A project trained on ``entries`` (scenes) and published, through the official training SDK (each call under
    cvops.retry, so a service started with --fault-rate can still be set up)."""
    tc = training_client

    def call(fn, what):
        return retry.call(fn, what=what, policy=retry.RetryPolicy(base_delay=0.05, max_attempts=10))

    domains = call(tc.get_domains, "domains")
    domain_id = next(d.id for d in domains if d.type == "Classification" and d.name == domain)
    project = call(lambda: tc.create_project(name, domain_id=domain_id, classification_type=classification_type),
                   "create project")
    tag_ids = {t: call(lambda t=t: tc.create_tag(project.id, t), "create tag").id for t in tags}
    for start in range(0, len(entries), 64):
        batch = [ImageFileCreateEntry(name=s.name, contents=s.data, tag_ids=[tag_ids[label] for label in s.labels])
                 for s in entries[start:start + 64]]
        result = call(lambda b=batch: tc.create_images_from_files(project.id, ImageFileCreateBatch(images=b)),
                      "upload")
        assert result.is_batch_successful
    iteration = call(lambda: tc.train_project(project.id), "train")
    deadline = time.monotonic() + 60
    while iteration.status not in ("Completed", "Failed") and time.monotonic() < deadline:
        time.sleep(0.1)
        iteration = call(lambda it=iteration.id: tc.get_iteration(project.id, it), "poll")
    assert iteration.status == "Completed", iteration.status
    call(lambda: tc.publish_iteration(project.id, iteration.id, name, service.prediction_resource_id), "publish")
    return TrainedProject(project.id, name, tags)


def trained_service(start_local_cv, **flags):
    """A local service with its own flags and a trained, published multiclass project on it."""
    service = start_local_cv(**flags)
    client = clients.training_client(service.endpoint, service.training_key)
    project = train_and_publish(client, service, name="fn-flags", entries=scenes.dataset(CLASSES, 6, seed=13,
                                                                                          size=(256, 192)),
                                classification_type="Multiclass", tags=CLASSES)
    return service, project


def registered(name: str) -> Callable[..., Any]:
    """The user function the host would call, taken from function_app.py's registrations."""
    return user_function(load_app(), name)


def scene(label, seed: int = 5) -> bytes:
    return scenes.generate(label, seed, size=(320, 240))

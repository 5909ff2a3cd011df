"""Fixtures for the Function App's tests: trained projects on the local service, an app environment per test, and a
way to deliver a blob to the registered function exactly as the host would.

Every test gets its own containers (unique names) and its own settings in the environment; the app context is reset
around it, so tests do not see each other's clients, pacers or records.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.storage.blob import BlobClient, BlobServiceClient
from fn_helpers import CLASSES, TrainedProject, registered, train_and_publish

from devkit import scenes
from functions import context, routes
from functions.handler import RoutedBlob, observe
from pipelines.run_local import trigger_client

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def multiclass_project(local_cv, training_client) -> TrainedProject:
    entries = scenes.dataset(CLASSES, 8, seed=11, size=(256, 192))
    return train_and_publish(training_client, local_cv, name="fn-multiclass", entries=entries,
                             classification_type="Multiclass", tags=CLASSES)


@pytest.fixture(scope="session")
def multilabel_project(local_cv, training_client) -> TrainedProject:
    entries = scenes.dataset([("beach", "forest"), ("city", "forest"), "beach", "forest", "city"], 6, seed=12,
                             size=(256, 192))
    return train_and_publish(training_client, local_cv, name="fn-multilabel", entries=entries,
                             classification_type="Multilabel", tags=CLASSES)


@dataclass
class FunctionEnv:
    """One test's app: its containers, settings and helpers to put blobs in and deliver them to the trigger."""

    blob_service: BlobServiceClient
    containers: dict[str, str]
    settings: dict[str, str]
    monkeypatch: Any
    outcomes: list[RoutedBlob] = field(default_factory=list)

    @property
    def incoming(self) -> str:
        return self.containers["incoming"]

    def set(self, **values: str) -> None:
        """Change settings (the app context rebuilds itself on the next invocation)."""
        for key, value in values.items():
            self.settings[key] = value
            self.monkeypatch.setenv(key, value)

    def upload(self, name: str, data: bytes, container: str | None = None) -> None:
        self.blob_service.get_blob_client(container or self.incoming, name).upload_blob(data, overwrite=True)

    def client(self, name: str, container: str | None = None) -> BlobClient:
        """The BlobClient the Python worker hands the blob trigger (built by the blob extension from the setting)."""
        return trigger_client(container or self.incoming, name)

    def deliver(self, name: str) -> RoutedBlob:
        """Call the registered blob trigger with this blob; return the handler's outcome."""
        seen: list[RoutedBlob] = []
        with observe(seen.append):
            registered("route_new_blob")(self.client(name))
        assert len(seen) == 1
        self.outcomes.append(seen[0])
        return seen[0]

    def names(self, key: str) -> list[str]:
        return sorted(b.name for b in self.blob_service.get_container_client(self.containers[key]).list_blobs())

    def read(self, key: str, name: str) -> bytes:
        return self.blob_service.get_blob_client(self.containers[key], name).download_blob().readall()

    def records(self) -> list[dict]:
        import json

        return [json.loads(self.read("results", n)) for n in self.names("results")]


@pytest.fixture
def function_env(monkeypatch, azurite, blob_service, local_cv, multiclass_project) -> Iterator[FunctionEnv]:
    """Settings for the app on Azurite and the local service, with fresh containers, and a fresh app context."""
    run = f"fn{next(_counter)}x{int(time.time() * 1000) % 100000}"
    containers = {key: f"{run}-{key}" for key in
                  ("incoming", "accepted", "review", "rejected", "quarantine", "results")}
    for name in containers.values():
        blob_service.create_container(name)
    settings = {
        "CVOPS_STORAGE": azurite.connection_string,
        "VISION_PREDICTION_ENDPOINT": local_cv.endpoint,
        "VISION_PREDICTION_KEY": local_cv.prediction_key,
        "VISION_PROJECT_ID": multiclass_project.project_id,
        "VISION_PUBLISH_NAME": multiclass_project.publish_name,
        "VISION_MODERATION_ENDPOINT": "",
        "VISION_MODERATION_KEY": "",
        "CVOPS_POLICY": "policy.yaml",
        "CVOPS_PREDICTION_TPS": "100",
        "CVOPS_MOVE_SOURCE": "false",
        "CVOPS_STORE_PREDICTIONS": "false",
        **{routes.BY_KEY[key].setting: name for key, name in containers.items()},
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    context.reset()
    env = FunctionEnv(blob_service, containers, settings, monkeypatch)
    try:
        yield env
    finally:
        context.reset()
        for name in containers.values():
            blob_service.delete_container(name)

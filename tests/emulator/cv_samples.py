"""Helpers shared by the local Custom Vision service's tests: images, projects, waiting for training, raw calls."""

from __future__ import annotations

import io
import time
import uuid

import requests
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Iteration,
    Project,
    Tag,
)
from PIL import Image

from devkit import scenes


def png(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def project_with_images(trainer: CustomVisionTrainingClient, labels: dict[str, int], *,
                        classification_type: str | None = None, seed: int = 0) -> tuple[Project, dict[str, Tag]]:
    """A project with one tag per label and that many generated scene images in it (one batch per tag)."""
    project = trainer.create_project(unique_name("test"), classification_type=classification_type)
    tags = {}
    for n, (label, count) in enumerate(labels.items()):
        tags[label] = trainer.create_tag(project.id, label)
        if count:
            entries = [ImageFileCreateEntry(name=f"{label}_{i}.jpg", contents=scenes.generate(label, seed + 1000 * n + i),
                                            tag_ids=[tags[label].id]) for i in range(count)]
            result = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
            assert result.is_batch_successful, [i.status for i in result.images]
    return project, tags


def wait_trained(trainer: CustomVisionTrainingClient, project_id: str, iteration_id: str,
                 timeout: float = 60.0) -> Iteration:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        iteration = trainer.get_iteration(project_id, iteration_id)
        if iteration.status != "Training":
            return iteration
        time.sleep(0.1)
    raise AssertionError(f"iteration {iteration_id} still training after {timeout} s")


def raw(service, method: str, path: str, *, api: str = "training", version: str | None = None, key: str | None = None,
        **kwargs) -> requests.Response:
    """A raw HTTP call to the service (for what the SDK cannot send or hides: headers, status codes, bodies)."""
    version = version or ("v3.4-preview" if api == "training" else "v3.1")
    header = "Training-Key" if api == "training" else "Prediction-Key"
    headers = {header: key if key is not None else (service.training_key if api == "training"
                                                     else service.prediction_key)}
    headers.update(kwargs.pop("headers", {}))
    return requests.request(method, f"{service.endpoint}/customvision/{version}/{api}{path}", headers=headers,
                            timeout=30, **kwargs)

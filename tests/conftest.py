"""Shared fixtures: real Azurite and a real local Custom Vision service, started for the session and always stopped.

Each is a child process on a free loopback port (never the well-known 10000 or 5080, which a developer's own Azurite or
service may hold). Clients are the official SDKs with their own retries off, so a test sees exactly what the service said.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.storage.blob import BlobServiceClient
from hypothesis import settings

from devkit.local_services import (
    Azurite,
    LocalCustomVision,
    start_azurite,
    start_local_custom_vision,
)

# CI draws the same examples every run (derandomize): a run that lands or not must not depend on the draw. Developers'
# runs keep drawing new ones, which is how the generated tests find what nobody wrote down (and each find becomes a
# named test, as test_a_jpeg_cut_inside_its_frame_header_is_damaged_not_an_unsupported_variant did).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> Iterator[Azurite]:
    """Azurite's blob service, in memory, for the whole session."""
    service = start_azurite(log_dir=tmp_path_factory.mktemp("azurite-log"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def blob_service(azurite: Azurite) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture(scope="session")
def local_cv(tmp_path_factory) -> Iterator[LocalCustomVision]:
    """The local Custom Vision service, in memory, with no latency, rate limit or faults, for the whole session."""
    service = start_local_custom_vision(log_dir=tmp_path_factory.mktemp("custom-vision-log"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def start_local_cv(tmp_path) -> Iterator[Callable[..., LocalCustomVision]]:
    """Factory for a local service with its own flags (rate limits, latency, faults); each is stopped after the test."""
    started: list[LocalCustomVision] = []

    def start(**kwargs) -> LocalCustomVision:
        kwargs.setdefault("log_dir", tmp_path / "custom-vision-log")
        service = start_local_custom_vision(**kwargs)
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


def make_training_client(service: LocalCustomVision) -> CustomVisionTrainingClient:
    return service.training_client()


def make_prediction_client(service: LocalCustomVision) -> CustomVisionPredictionClient:
    return service.prediction_client()


@pytest.fixture(scope="session")
def training_client(local_cv: LocalCustomVision) -> CustomVisionTrainingClient:
    return make_training_client(local_cv)


@pytest.fixture(scope="session")
def prediction_client(local_cv: LocalCustomVision) -> CustomVisionPredictionClient:
    return make_prediction_client(local_cv)


@pytest.fixture
def isolated_secret_registry() -> Iterator[None]:
    """Forget, after the test, the secrets it registered on purpose.

    Why: the registry is process-wide, as it must be in the app, and hypothesis seeds its text with the project's own
    string literals, so a made-up "secret" can be ``review`` or ``--review-recall``; registered for good, it redacts
    that word in every later test's messages (seen: ``--REDACTED-precision``)."""
    from cvops import redaction

    with redaction._lock:
        secrets, forms = set(redaction._secrets), redaction._forms
    try:
        yield
    finally:
        with redaction._lock:
            redaction._secrets.clear()
            redaction._secrets.update(secrets)
            redaction._forms = forms

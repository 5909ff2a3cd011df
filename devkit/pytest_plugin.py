"""pytest plugin: the local Custom Vision service and Azurite as fixtures, for a team's own tests of its Custom Vision code.

Why a plugin: cvops tests itself offline against real HTTP servers (the local service speaks the official REST API and
really trains; Azurite is Blob Storage). A team whose CI tests its own scripts against Custom Vision should get the
same with one install, not by copying our conftest. Installing cvops registers this module under the ``pytest11``
entry point, so the fixtures exist in every pytest run of that environment; nothing starts until a test asks for one.

Fixtures (all session-scoped: a service starts once per run and is always stopped at the end, also on failure):

- ``cvops_custom_vision``: a :class:`devkit.local_services.LocalCustomVision` (``endpoint``, ``training_key``,
  ``prediction_key``, ``prediction_resource_id``), in memory.
- ``cvops_training_client`` / ``cvops_prediction_client``: the official SDK clients pointed at it, with msrest's own
  retries off, so a test sees exactly what the service answered.
- ``cvops_azurite``: a :class:`devkit.local_services.Azurite` (``connection_string``, ``blob_endpoint``), in memory.
  Azurite comes from npm (``npm install azurite``); it is looked up in ``$CVOPS_AZURITE_BIN``, ``node_modules/.bin`` of
  the working folder, then PATH. The option ``--cvops-azurite-bin DIR`` sets the folder too.
- ``cvops_blob_service``: an ``azure.storage.blob.BlobServiceClient`` on that Azurite.

Names start with ``cvops_`` so they never collide with a project's own ``azurite`` or ``custom_vision`` fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from devkit.local_services import Azurite, LocalCustomVision


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cvops", "cvops local services (Azurite and the local Custom Vision service)")
    group.addoption("--cvops-azurite-bin", metavar="DIR", default=None,
                    help="folder holding Azurite's launchers (node_modules/.bin); default: $CVOPS_AZURITE_BIN, "
                         "./node_modules/.bin, then PATH")


@pytest.fixture(scope="session")
def cvops_custom_vision(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCustomVision]:
    """The local Custom Vision service (training and prediction APIs) on a free loopback port, in memory."""
    from devkit.local_services import start_local_custom_vision

    service = start_local_custom_vision(log_dir=tmp_path_factory.mktemp("cvops-custom-vision-log"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def cvops_training_client(cvops_custom_vision: LocalCustomVision) -> Any:
    """``CustomVisionTrainingClient`` on the local service, retries off."""
    return cvops_custom_vision.training_client()


@pytest.fixture(scope="session")
def cvops_prediction_client(cvops_custom_vision: LocalCustomVision) -> Any:
    """``CustomVisionPredictionClient`` on the local service, retries off."""
    return cvops_custom_vision.prediction_client()


@pytest.fixture(scope="session")
def cvops_azurite(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite (Blob and Queue Storage) on free loopback ports, in memory."""
    from devkit.local_services import AZURITE_DIR_VARIABLE, start_azurite

    folder = request.config.getoption("--cvops-azurite-bin")
    previous = os.environ.get(AZURITE_DIR_VARIABLE)
    if folder:
        os.environ[AZURITE_DIR_VARIABLE] = str(folder)
    try:
        service = start_azurite(log_dir=tmp_path_factory.mktemp("cvops-azurite-log"))
    finally:
        if folder:
            if previous is None:
                os.environ.pop(AZURITE_DIR_VARIABLE, None)
            else:
                os.environ[AZURITE_DIR_VARIABLE] = previous
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def cvops_blob_service(cvops_azurite: Azurite) -> Any:
    """``BlobServiceClient`` on the Azurite of this run."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(cvops_azurite.connection_string)

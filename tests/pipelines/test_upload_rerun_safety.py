"""A rerun of `images upload` never skips an image that is not in the project, whatever broke between creating a
batch and recording its keys, against the real local Custom Vision service and Azurite.

Each test sees the training client through a wrapper that breaks one call the way the service or the network can:
the key-recording metadata update refused, or a create batch applied by the service but answered only on the retry
(``OKDuplicate`` for everything that worked, no ``OK``). Before the fix, both left the keys of refused images in the
project, and every later run skipped those images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flow_helpers import World, settings_env, unique, upload_folder_per_tag, write_spec

from cvops.errors import ThrottledError
from devkit import scenes
from pipelines import config
from pipelines.service import Service
from pipelines.sources import ImageSource
from pipelines.spec import parse_source
from pipelines.upload import UploadReport, upload

pytestmark = [pytest.mark.emulator, pytest.mark.azurite]

LATE = "s/beach/late.jpg"  # refused on the first run (a truncated upload), fixed before the second


class _Client:
    """The real training client, with some methods replaced by ``override(real_client, *args)``."""

    def __init__(self, client: Any, overrides: dict[str, Callable[..., Any]]):
        self._client, self._overrides = client, overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return lambda *args, **kwargs: self._overrides[name](self._client, *args, **kwargs)
        return getattr(self._client, name)


class _BrokenService:
    """The real Service; the calls the upload makes through ``training_call`` see the training client with ``overrides``."""

    def __init__(self, service: Service, **overrides: Callable[..., Any]):
        self._service, self._overrides = service, overrides

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def training_call(self, what: str, fn: Callable[[Any], Any], **kwargs: Any) -> Any:
        return self._service.training_call(what, lambda c: fn(_Client(c, self._overrides)), **kwargs)


@pytest.fixture
def world(local_cv, azurite, blob_service, tmp_path, monkeypatch) -> World:
    monkeypatch.chdir(tmp_path)
    name, training = unique("rerun"), unique("reruntrain")
    spec = write_spec(tmp_path / "p.yaml", name, training={"container": training, "prefix": "s/"})
    world = World(settings_env(local_cv, azurite), spec, name, training, "", blob_service)
    assert world.run("project", "apply", str(spec))[0].exit_code == 0
    return world


def _set_up(world: World) -> tuple[Service, ImageSource, str, int]:
    """n good scenes plus one truncated JPEG in Blob; the Service, the source and the project id to upload with."""
    n = upload_folder_per_tag(world.blob_service, world.training, "s/", 2, seed=11)
    world.blob_service.get_blob_client(world.training, LATE).upload_blob(scenes.truncated_jpeg(3), overwrite=True)
    service = Service(config.resolve(world.env), blob_service=world.blob_service)
    source = ImageSource(parse_source({"container": world.training, "prefix": "s/"}), lambda: world.blob_service)
    return service, source, service.project(world.name).id, n


def _fix_the_late_image_and_rerun(world: World, service: Service, source: ImageSource, project_id: str
                                  ) -> tuple[UploadReport, UploadReport]:
    late = scenes.generate("beach", 99, size=(160, 120))
    world.blob_service.get_blob_client(world.training, LATE).upload_blob(late, overwrite=True)
    return upload(service, source, project_id), upload(service, source, project_id)


def _refuse_metadata_updates(client: Any, *args: Any, **kwargs: Any) -> Any:
    raise ThrottledError("record uploaded keys in image metadata: still throttled (HTTP 429)")


def test_keys_whose_recording_failed_are_sent_again_and_the_refused_image_is_uploaded_once_fixed(world,
                                                                                                   training_client):
    service, source, project_id, n = _set_up(world)

    first = upload(_BrokenService(service, update_image_metadata=_refuse_metadata_updates), source, project_id)
    assert (first.created, first.unrecorded) == (n, n)
    assert [(f.key, f.status) for f in first.failures] == [("beach/late.jpg", "ErrorImageFormat")]

    second, third = _fix_the_late_image_and_rerun(world, service, source, project_id)
    # Nothing was recorded, so everything is sent again: the n copies are absorbed as duplicates, the fixed one is new.
    assert (second.skipped, second.duplicates, second.created, second.failures) == (0, n, 1, [])
    assert (third.skipped, third.created, third.create_calls) == (n + 1, 0, 0)
    assert training_client.get_image_count(project_id) == n + 1


def test_a_create_answered_only_by_its_retry_records_the_duplicates_and_not_the_refused_image(world, training_client):
    service, source, project_id, n = _set_up(world)

    def applied_then_retried(client: Any, *args: Any, **kwargs: Any) -> Any:
        client.create_images_from_urls(*args, **kwargs)  # applied; its answer lost to a read timeout
        return client.create_images_from_urls(*args, **kwargs)

    first = upload(_BrokenService(service, create_images_from_urls=applied_then_retried), source, project_id)
    assert (first.created, first.duplicates, first.unrecorded) == (0, n, 0)
    assert [(f.key, f.status) for f in first.failures] == [("beach/late.jpg", "ErrorImageFormat")]

    second, third = _fix_the_late_image_and_rerun(world, service, source, project_id)
    assert (second.skipped, second.created, second.duplicates, second.create_calls) == (n, 1, 0, 1)
    assert (third.skipped, third.created, third.create_calls) == (n + 1, 0, 0)
    assert training_client.get_image_count(project_id) == n + 1

"""Outcome ``accepted`` lands in container ``accepted`` (setting ``CVOPS_ACCEPTED_CONTAINER``), and a deployment still
configured with the former ``CVOPS_CLASSIFIED_CONTAINER`` keeps routing where it did (issue 12).

End to end on Azurite and the local service, through the registered blob trigger: the default container by its literal
name, the former setting alone (used, one warning), and both settings disagreeing (refused, naming both).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.core.exceptions import ResourceExistsError
from fn_helpers import registered, scene

from cvops.errors import ConfigurationError
from functions import routes
from functions.naming import SIDECAR_SUFFIX

ACCEPTED = routes.BY_OUTCOME["accepted"]
FORMER = "CVOPS_CLASSIFIED_CONTAINER"


@pytest.fixture
def shared_container(function_env) -> Iterator[Callable[[str, str], str]]:
    """A container by a fixed name (``accepted``, ``classified``), as a real deployment has; blobs this test writes
    there are deleted afterwards (their names are unique, so other tests' blobs are never touched)."""
    used: list[tuple[str, str]] = []

    def make(name: str, prefix: str) -> str:
        with contextlib.suppress(ResourceExistsError):
            function_env.blob_service.create_container(name)
        used.append((name, prefix))
        return name

    yield make
    for name, prefix in used:
        client = function_env.blob_service.get_container_client(name)
        for blob in client.list_blobs(name_starts_with=prefix):
            client.delete_blob(blob.name)


def _names(function_env, container: str, prefix: str) -> list[str]:
    client = function_env.blob_service.get_container_client(container)
    return sorted(b.name for b in client.list_blobs(name_starts_with=prefix))


def _former_setting_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and FORMER in r.getMessage()]


def test_the_route_names_agree_and_remember_the_former_setting():
    assert (ACCEPTED.key, ACCEPTED.setting, ACCEPTED.default, ACCEPTED.tagged) == (
        "accepted", "CVOPS_ACCEPTED_CONTAINER", "accepted", True)
    assert ACCEPTED.legacy_settings == (FORMER,) and routes.LEGACY_SETTINGS == {FORMER: ACCEPTED}


def test_with_the_default_configuration_an_accepted_image_lands_in_container_accepted_under_its_tag(
        function_env, shared_container, monkeypatch):
    monkeypatch.delenv(ACCEPTED.setting)
    container = shared_container("accepted", f"beach/{function_env.incoming}/")
    name = f"{function_env.incoming}/shot.jpg"
    data = scene("beach")
    function_env.upload(name, data)
    record = function_env.deliver(name).record
    assert record["outcome"] == "accepted" and record["destinations"] == [f"accepted/beach/{name}"]
    assert _names(function_env, container, "beach/" + function_env.incoming) == [
        f"beach/{name}", f"beach/{name}{SIDECAR_SUFFIX}"]
    assert function_env.blob_service.get_blob_client(container, f"beach/{name}").download_blob().readall() == data
    assert function_env.names("accepted") == []  # the test's own accepted container was not configured


def test_with_only_the_former_setting_images_keep_landing_in_its_container_with_one_warning(
        function_env, shared_container, monkeypatch, caplog):
    monkeypatch.delenv(ACCEPTED.setting)
    monkeypatch.setenv(FORMER, "classified")
    container = shared_container("classified", f"beach/{function_env.incoming}/")
    names = [f"{function_env.incoming}/one.jpg", f"{function_env.incoming}/two.jpg"]
    with caplog.at_level(logging.WARNING, logger="cvops.functions"):
        for name in names:
            function_env.upload(name, scene("beach"))
            record = function_env.deliver(name).record
            assert record["outcome"] == "accepted" and record["destinations"] == [f"classified/beach/{name}"]
    assert _names(function_env, container, "beach/" + function_env.incoming) == sorted(
        [f"beach/{n}" for n in names] + [f"beach/{n}{SIDECAR_SUFFIX}" for n in names])
    [warning] = _former_setting_warnings(caplog)  # one per configuration load, not one per image
    assert ACCEPTED.setting in warning and "rename" in warning and "'classified'" in warning


def test_the_former_and_the_new_setting_set_to_different_containers_are_refused_naming_both(function_env):
    function_env.set(**{FORMER: f"{function_env.incoming}-elsewhere"})
    name = f"conflict-{uuid.uuid4().hex[:8]}.jpg"
    function_env.upload(name, scene("beach"))
    with pytest.raises(ConfigurationError) as caught:
        registered("route_new_blob")(function_env.client(name))
    message = str(caught.value)
    assert ACCEPTED.setting in message and FORMER in message and "delete" in message
    assert function_env.names("accepted") == [] and function_env.names("results") == []


def test_the_former_and_the_new_setting_set_to_the_same_container_route_there(function_env, caplog):
    function_env.set(**{FORMER: function_env.containers["accepted"]})
    function_env.upload("same.jpg", scene("beach"))
    with caplog.at_level(logging.WARNING, logger="cvops.functions"):
        assert function_env.deliver("same.jpg").record["outcome"] == "accepted"
    assert function_env.names("accepted") == ["beach/same.jpg", f"beach/same.jpg{SIDECAR_SUFFIX}"]
    [warning] = _former_setting_warnings(caplog)
    assert "delete" in warning


def test_a_missing_container_named_only_by_the_former_setting_is_reported_under_that_setting(
        function_env, monkeypatch):
    monkeypatch.delenv(ACCEPTED.setting)
    missing = f"gone-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(FORMER, missing)
    name = f"{function_env.incoming}/missing.jpg"
    function_env.upload(name, scene("beach"))
    with pytest.raises(ConfigurationError) as caught:
        registered("route_new_blob")(function_env.client(name))
    assert f"container {missing!r} named by {FORMER} does not exist" in str(caught.value)
    assert caught.value.setting == FORMER

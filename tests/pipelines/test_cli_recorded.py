"""The commands replayed from recorded HTTP (tests/pipelines/cassettes/), with the network blocked: the CLI's
requests and its handling of real answers are checked without any service running.

Recorded with ``pytest tests/pipelines/test_cli_recorded.py --record-mode=rewrite``: against Azure when the real
settings are in the environment (``AZURE_SETTINGS`` and one of ``STORAGE_SETTINGS``), against a fresh local service
and Azurite otherwise. Either way every request and response is scrubbed on its way to disk by tests/recording.py
(live endpoints become the fixed fake ones, keys, tokens and SAS signatures/lifetimes go;
tests/test_fixtures_hold_no_secrets.py fails on any leak). Replays use those fake endpoints, so a replayed request
only matches if the CLI builds the same method, host, path and query as it did against the live service.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from cvops import clients
from devkit import scenes
from devkit.local_services import AZURITE_ACCOUNT, AZURITE_KEY
from pipelines.cli import cli
from tests.recording import (
    FAKE_BLOB_ENDPOINT,
    FAKE_CV_ENDPOINT,
    FAKE_RESOURCE_ID,
    Scrubber,
    endpoint_rewrites,
    resource_id_rewrites,
    secret_rewrites,
    settings_from,
    storage_rewrites,
)

CONTAINER = "recorded-training"
PROJECT = "recorded-scenes"
# Azure's Quick training takes minutes, the local service's seconds; replays do not wait at all (see `replay_fast`).
TRAIN_TIMEOUT = "1800"
AZURE_SETTINGS = ("VISION_TRAINING_ENDPOINT", "VISION_TRAINING_KEY", "VISION_PREDICTION_ENDPOINT",
                  "VISION_PREDICTION_KEY", "VISION_PREDICTION_RESOURCE_ID")
STORAGE_SETTINGS = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL")
# What the CLI sees on replay: the fake endpoints, keys that are not keys, Azurite's public account key.
REPLAY_ENV = {
    "VISION_TRAINING_ENDPOINT": FAKE_CV_ENDPOINT, "VISION_TRAINING_KEY": "replayed-training-key",
    "VISION_PREDICTION_ENDPOINT": FAKE_CV_ENDPOINT, "VISION_PREDICTION_KEY": "replayed-prediction-key",
    "VISION_PREDICTION_RESOURCE_ID": FAKE_RESOURCE_ID,
    "AZURE_STORAGE_CONNECTION_STRING": (f"DefaultEndpointsProtocol=https;AccountName={AZURITE_ACCOUNT};"
                                        f"AccountKey={AZURITE_KEY};BlobEndpoint={FAKE_BLOB_ENDPOINT};"),
    "AZURE_STORAGE_ACCOUNT_URL": "", "CVOPS_SPEC": "", "CVOPS_PROJECT": "", "CVOPS_TIER": "",
}

SCRUB = Scrubber()  # its rewrites are filled by `live` while recording, and empty on replay


def azure_settings(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The real services to record against, from the environment; None records against the local services.
    A connection string wins over an account URL, as in the CLI (pipelines/config.py)."""
    found = settings_from(environ, AZURE_SETTINGS, any_of=STORAGE_SETTINGS)
    if found is None:
        return None
    # Both always present: cli_env layers these over REPLAY_ENV, whose fake connection string must not survive.
    if found.get("AZURE_STORAGE_CONNECTION_STRING"):
        found["AZURE_STORAGE_ACCOUNT_URL"] = ""
    else:
        found["AZURE_STORAGE_CONNECTION_STRING"] = ""
    if environ.get("CVOPS_TIER"):
        found["CVOPS_TIER"] = environ["CVOPS_TIER"]
    return found


def rewrites_for(settings: Mapping[str, str]) -> list[tuple[str, str]]:
    """Everything live in ``settings`` mapped to its fake: both endpoints, the storage account, keys, resource id."""
    return [*endpoint_rewrites(settings["VISION_TRAINING_ENDPOINT"], FAKE_CV_ENDPOINT),
            *endpoint_rewrites(settings["VISION_PREDICTION_ENDPOINT"], FAKE_CV_ENDPOINT),
            *storage_rewrites(connection_string=settings.get("AZURE_STORAGE_CONNECTION_STRING") or None,
                              account_url=settings.get("AZURE_STORAGE_ACCOUNT_URL") or None),
            *secret_rewrites(settings["VISION_TRAINING_KEY"], settings["VISION_PREDICTION_KEY"]),
            *resource_id_rewrites(settings["VISION_PREDICTION_RESOURCE_ID"])]


def cli_env(live: Mapping[str, str] | None) -> dict[str, str]:
    """The CLI's settings: the fake ones on replay, the live ones (Azure's or the local services') while recording."""
    return dict(REPLAY_ENV) if live is None else {**REPLAY_ENV, **live}


def prepare(settings: Mapping[str, str]) -> None:
    """Before recording: the training images in Blob (once), and no project left from a previous recording, so the
    recorded `project apply` creates it. Not recorded: this runs before the cassette opens."""
    blob = clients.blob_service_client(**({"connection_string": settings["AZURE_STORAGE_CONNECTION_STRING"]}
                                          if settings.get("AZURE_STORAGE_CONNECTION_STRING") else
                                          {"account_url": settings["AZURE_STORAGE_ACCOUNT_URL"]}))
    container = blob.get_container_client(CONTAINER)
    if not container.exists():
        container.create_container()
        for item in scenes.dataset(scenes.CLASSES, 5, seed=21, size=(96, 72)):
            container.upload_blob(f"scenes/{item.labels[0]}/{item.name}", item.data)
    training = clients.training_client(settings["VISION_TRAINING_ENDPOINT"], settings["VISION_TRAINING_KEY"])
    for project in training.get_projects():
        if project.name == PROJECT:
            for iteration in training.get_iterations(project.id):
                if iteration.publish_name:
                    training.unpublish_iteration(project.id, iteration.id)
            training.delete_project(project.id)


@pytest.fixture(scope="module")
def vcr_config():
    return SCRUB.vcr_config()


@pytest.fixture(scope="module")
def live(request):
    """While recording: the settings of the services recorded against (Azure's from the environment, else a fresh
    local service and the session's Azurite), with the scrubber's rewrites set for them. Module-scoped so it is set
    up before the cassette opens. On replay: None."""
    if request.config.getoption("--record-mode") in (None, "none"):
        yield None
        return
    service = None
    settings = azure_settings(os.environ)
    if settings is None:
        from devkit.local_services import start_local_custom_vision

        azurite = request.getfixturevalue("azurite")
        service = start_local_custom_vision(log_dir=request.getfixturevalue("tmp_path_factory").mktemp("cv-recording"))
        settings = {"VISION_TRAINING_ENDPOINT": service.endpoint, "VISION_TRAINING_KEY": service.training_key,
                    "VISION_PREDICTION_ENDPOINT": service.endpoint, "VISION_PREDICTION_KEY": service.prediction_key,
                    "VISION_PREDICTION_RESOURCE_ID": service.prediction_resource_id,
                    "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "AZURE_STORAGE_ACCOUNT_URL": ""}
    try:
        prepare(settings)
        SCRUB.use(rewrites_for(settings))
        yield settings
    finally:
        SCRUB.use([])
        if service is not None:
            service.stop()


@pytest.fixture
def env(live, tmp_path, monkeypatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no .env file of the developer's is read
    return cli_env(live)


@pytest.fixture
def replay_fast(live, monkeypatch):
    """On replay the recorded answers come at once: `train --wait` need not sleep between its polls (recorded
    against Azure there are dozens of them, up to 10 s apart)."""
    if live is None:
        import pipelines.training

        monkeypatch.setattr(pipelines.training, "train",
                            functools.partial(pipelines.training.train, sleep=lambda seconds: None))


def spec_file(tmp_path: Path) -> str:
    path = tmp_path / "recorded.yaml"
    path.write_text(f"""
project: {{name: {PROJECT}, classification_type: Multiclass, domain: General (compact)}}
tags: [{{name: beach}}, {{name: forest}}, {{name: mountain}}, {{name: city}}]
gates: {{min_precision: 0.5, min_recall: 0.5, min_map: 0.5}}
publish: {{name: {PROJECT}}}
data: {{training: {{container: {CONTAINER}, prefix: scenes/}}}}
""")
    return str(path)


def cvops(env, *args):
    result = CliRunner().invoke(cli, [*args, "--json"], env=env, catch_exceptions=False)
    return result, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else None)


@pytest.mark.vcr
@pytest.mark.block_network
def test_replayed_flow_applies_uploads_by_url_trains_publishes_and_predicts(env, tmp_path, replay_fast):
    spec = spec_file(tmp_path)
    result, applied = cvops(env, "project", "apply", spec)
    assert result.exit_code == 0, result.stderr
    assert [c["action"] for c in applied["changes"]] == ["create_project"] + ["create_tag"] * 4

    result, up = cvops(env, "images", "upload", "--spec", spec)
    assert result.exit_code == 0, result.stderr
    assert (up["created"], up["create_calls"], up["mode"], up["image_bytes_sent"]) == (20, 1, "urls", 0)

    result, trained = cvops(env, "train", "--spec", spec, "--wait", "--timeout", TRAIN_TIMEOUT)
    assert result.exit_code == 0, result.stderr
    assert trained["outcome"] == "completed"

    result, published = cvops(env, "publish", "--spec", spec)
    assert result.exit_code == 0, result.stderr
    assert published["outcome"] == "published"

    image = tmp_path / "beach.jpg"
    image.write_bytes(scenes.generate("beach", 77, size=(96, 72)))
    result, predicted = cvops(env, "predict", "--spec", spec, str(image), "--no-store")
    assert result.exit_code == 0, result.stderr
    assert predicted["predictions"][0]["tag"] == "beach"

    result, again = cvops(env, "images", "upload", "--spec", spec)
    assert result.exit_code == 0, result.stderr
    assert (again["created"], again["skipped_already_uploaded"], again["create_calls"]) == (0, 20, 0)


@pytest.mark.vcr
@pytest.mark.block_network
def test_replayed_wrong_key_is_refused_with_exit_3(env, tmp_path):
    env = {**env, "VISION_TRAINING_KEY": "0" * 32}
    result, data = cvops(env, "status", "--project", PROJECT)
    assert result.exit_code == 3
    assert "training key" in result.stderr.lower() and "Traceback" not in result.stderr
    assert data["ok"] is False


AZURE_ENV = {
    "VISION_TRAINING_ENDPOINT": "https://contoso-cv-train.cognitiveservices.azure.com/",
    "VISION_TRAINING_KEY": "0123456789abcdef0123456789abcdef",
    "VISION_PREDICTION_ENDPOINT": "https://contoso-cv-predict.cognitiveservices.azure.com/",
    "VISION_PREDICTION_KEY": "fedcba9876543210fedcba9876543210",
    "VISION_PREDICTION_RESOURCE_ID": ("/subscriptions/5f3a1c2e-9b8d-4e7f-a6b5-c4d3e2f1a0b9/resourceGroups/rg/providers/"
                                      "Microsoft.CognitiveServices/accounts/contoso-cv-predict"),
    "AZURE_STORAGE_ACCOUNT_URL": "https://contosoimages.blob.core.windows.net",
    "HOME": "/home/operator",
}


def test_recording_uses_azure_when_its_settings_are_in_the_environment_and_maps_each_to_its_fake():
    settings = azure_settings(AZURE_ENV)
    assert settings is not None and "HOME" not in settings
    env = cli_env(settings)
    assert env["VISION_TRAINING_ENDPOINT"] == AZURE_ENV["VISION_TRAINING_ENDPOINT"]
    assert env["VISION_PREDICTION_KEY"] == AZURE_ENV["VISION_PREDICTION_KEY"]
    assert (env["AZURE_STORAGE_ACCOUNT_URL"], env["AZURE_STORAGE_CONNECTION_STRING"]) == (
        AZURE_ENV["AZURE_STORAGE_ACCOUNT_URL"], "")
    rewrites = dict(rewrites_for(settings))
    assert rewrites["https://contoso-cv-train.cognitiveservices.azure.com"] == FAKE_CV_ENDPOINT
    assert rewrites["https://contoso-cv-predict.cognitiveservices.azure.com"] == FAKE_CV_ENDPOINT
    assert rewrites["https://contosoimages.blob.core.windows.net"] == FAKE_BLOB_ENDPOINT
    assert rewrites[AZURE_ENV["VISION_PREDICTION_RESOURCE_ID"]] == FAKE_RESOURCE_ID
    assert rewrites[AZURE_ENV["VISION_TRAINING_KEY"]] == rewrites[AZURE_ENV["VISION_PREDICTION_KEY"]] == "REDACTED"


def test_the_cli_env_while_recording_against_azure_does_not_keep_the_replay_connection_string():
    """With only an account URL the CLI must use it (and the operator's identity), not the fake connection string
    that points at the replay endpoint: a connection string wins in pipelines/config.py."""
    from pipelines.config import resolve

    env = cli_env(azure_settings(AZURE_ENV))
    assert resolve(env).storage() == {"account_url": AZURE_ENV["AZURE_STORAGE_ACCOUNT_URL"]}
    assert resolve(cli_env(None)).storage() == {"connection_string": REPLAY_ENV["AZURE_STORAGE_CONNECTION_STRING"]}


def test_recording_uses_the_local_services_when_no_azure_setting_is_present_and_refuses_a_partial_set():
    assert azure_settings({"HOME": "/home/operator", "PATH": "/usr/bin"}) is None
    with pytest.raises(ValueError, match="VISION_PREDICTION_RESOURCE_ID"):
        azure_settings({k: v for k, v in AZURE_ENV.items() if k != "VISION_PREDICTION_RESOURCE_ID"})
    with pytest.raises(ValueError, match="AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL"):
        azure_settings({k: v for k, v in AZURE_ENV.items() if k != "AZURE_STORAGE_ACCOUNT_URL"})


def test_a_connection_string_wins_over_an_account_url_as_in_the_cli():
    conn = ("DefaultEndpointsProtocol=https;AccountName=contosoimages;AccountKey=c2VjcmV0;"
            "EndpointSuffix=core.windows.net")
    settings = azure_settings({**AZURE_ENV, "AZURE_STORAGE_CONNECTION_STRING": conn})
    assert settings["AZURE_STORAGE_CONNECTION_STRING"] == conn and settings["AZURE_STORAGE_ACCOUNT_URL"] == ""
    assert dict(rewrites_for(settings))["https://contosoimages.blob.core.windows.net"] == FAKE_BLOB_ENDPOINT

"""The commands replayed from recorded HTTP (tests/pipelines/cassettes/), with the network blocked: the CLI's
requests and its handling of real answers are checked without any service running.

Recorded against the local service and Azurite with ``pytest tests/pipelines/test_cli_recorded.py --record-mode=rewrite``;
while recording, every request and response is scrubbed on the way to disk: the loopback endpoints become fake
Azure-looking ones, key headers and SAS ``sig``/``se``/``st`` are replaced (tests/test_fixtures_hold_no_secrets.py
fails on any leak). Replays use those fake endpoints, so a replayed request only matches if the CLI builds the same
method, host, path and query as it did against the live service.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cvops import scenes
from cvops.local_services import AZURITE_ACCOUNT, AZURITE_KEY
from pipelines.cli import cli

FAKE_CV = "https://fake-cvops.cognitiveservices.azure.com"
FAKE_BLOB = "https://fakecvops.blob.core.windows.net"
FAKE_RESOURCE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/cvops-recorded/providers/"
                    "Microsoft.CognitiveServices/accounts/fake-cvops-prediction")
CONTAINER = "recorded-training"
PROJECT = "recorded-scenes"
SECRET_QUERY = re.compile(r"([?&](?:sig|se|st|skoid|sktid|skt|ske|sks|skv)=)[^&\"'\s]*")

# Filled while recording with the live loopback endpoints (and keys) to replace; empty on replay.
_REWRITES: list[tuple[str, str]] = []


def _scrub_text(text: str) -> str:
    for old, new in _REWRITES:
        text = text.replace(old, new)
    return SECRET_QUERY.sub(r"\1REDACTED", text)


def _scrub_request(request):
    request.uri = _scrub_text(request.uri)
    if request.body:
        body = request.body.decode("utf-8", "surrogateescape") if isinstance(request.body, bytes) else request.body
        if body.isprintable() or body.startswith(("{", "[")):
            request.body = _scrub_text(body).encode("utf-8", "surrogateescape")
    return request


def _scrub_response(response):
    body = response.get("body", {}).get("string")
    if isinstance(body, bytes):
        with contextlib.suppress(UnicodeDecodeError):  # binary bodies (images) hold no endpoint or key
            response["body"]["string"] = _scrub_text(body.decode("utf-8")).encode("utf-8")
    return response


@pytest.fixture(scope="module")
def vcr_config():
    return {
        "filter_headers": [("Training-Key", "REDACTED"), ("Prediction-Key", "REDACTED"),
                           ("Ocp-Apim-Subscription-Key", "REDACTED"), ("Authorization", "REDACTED"),
                           ("x-ms-client-request-id", None), ("User-Agent", None)],
        "before_record_request": _scrub_request,
        "before_record_response": _scrub_response,
        "decode_compressed_response": True,
    }


@pytest.fixture(scope="module")
def live(request):
    """While recording: a fresh local service and the session's Azurite with the training images. Module-scoped so it
    is set up before the cassette opens (its own requests are not recorded). On replay: nothing."""
    if request.config.getoption("--record-mode") in (None, "none"):
        yield None
        return
    from azure.storage.blob import BlobServiceClient

    from cvops.local_services import start_local_custom_vision

    azurite = request.getfixturevalue("azurite")
    service = start_local_custom_vision(log_dir=request.getfixturevalue("tmp_path_factory").mktemp("cv-recording"))
    try:
        blob = BlobServiceClient.from_connection_string(azurite.connection_string)
        container = blob.get_container_client(CONTAINER)
        if not container.exists():
            container.create_container()
            for item in scenes.dataset(scenes.CLASSES, 5, seed=21, size=(96, 72)):
                container.upload_blob(f"scenes/{item.labels[0]}/{item.name}", item.data)
        _REWRITES[:] = [(service.endpoint, FAKE_CV),
                        (azurite.blob_endpoint.rstrip("/"), FAKE_BLOB),  # path-style account -> host-style
                        (service.training_key, "REDACTED"), (service.prediction_key, "REDACTED")]
        yield service, azurite
    finally:
        _REWRITES.clear()
        service.stop()


@pytest.fixture
def env(live, tmp_path, monkeypatch) -> dict[str, str]:
    """Settings for the CLI: the fake endpoints on replay, the live ones while recording."""
    monkeypatch.chdir(tmp_path)
    fake = {
        "VISION_TRAINING_ENDPOINT": FAKE_CV, "VISION_TRAINING_KEY": "replayed-training-key",
        "VISION_PREDICTION_ENDPOINT": FAKE_CV, "VISION_PREDICTION_KEY": "replayed-prediction-key",
        "VISION_PREDICTION_RESOURCE_ID": FAKE_RESOURCE_ID,
        "AZURE_STORAGE_CONNECTION_STRING": (f"DefaultEndpointsProtocol=https;AccountName={AZURITE_ACCOUNT};"
                                            f"AccountKey={AZURITE_KEY};BlobEndpoint={FAKE_BLOB};"),
        "AZURE_STORAGE_ACCOUNT_URL": "", "CVOPS_SPEC": "", "CVOPS_PROJECT": "", "CVOPS_TIER": "",
    }
    if live is None:
        return fake
    service, azurite = live
    return {**fake, "VISION_TRAINING_ENDPOINT": service.endpoint, "VISION_TRAINING_KEY": service.training_key,
            "VISION_PREDICTION_ENDPOINT": service.endpoint, "VISION_PREDICTION_KEY": service.prediction_key,
            "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}


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
def test_replayed_flow_applies_uploads_by_url_trains_publishes_and_predicts(env, tmp_path):
    spec = spec_file(tmp_path)
    result, applied = cvops(env, "project", "apply", spec)
    assert result.exit_code == 0, result.stderr
    assert [c["action"] for c in applied["changes"]] == ["create_project"] + ["create_tag"] * 4

    result, up = cvops(env, "images", "upload", "--spec", spec)
    assert result.exit_code == 0, result.stderr
    assert (up["created"], up["create_calls"], up["mode"], up["image_bytes_sent"]) == (20, 1, "urls", 0)

    result, trained = cvops(env, "train", "--spec", spec, "--wait", "--timeout", "120")
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

"""The secrets suite (CLI): every secret setting, given odd values, through every command that reads it; no stdout,
stderr, --json document or log record carries the value in any form, and no odd value makes cvops call itself buggy.

Odd values (tests/secret_scan.py): a line break (``az ... --query "[key1,key2]" -o tsv`` prints two keys), CR, CRLF,
tab, spaces, surrounding whitespace, Latin-1 and non-Latin-1 Unicode, a bidi control, 10 KB, a URL with a SAS, ``%``.
Commands run in-process with click's runner against the real local Custom Vision service and Azurite, with every
logger at DEBUG (msrest logs request headers there, key headers included).
"""

from __future__ import annotations

import json
import logging
import re

import pytest
from click.testing import CliRunner
from flow_helpers import settings_env, unique, upload_folder_per_tag, write_spec

from devkit import scenes
from pipelines.cli import EXIT_BUG, cli
from tests.secret_scan import Scanner, odd_secrets

SCANNER = Scanner()


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    yield
    print(f"\nsecrets suite (CLI): {len(SCANNER.values)} secret values x outputs = {SCANNER.scanned} scans, "
          f"{len(SCANNER.leaks)} leaks")


@pytest.fixture(scope="module")
def world(local_cv, azurite, blob_service, tmp_path_factory):
    """A project on the local service (so commands get past the project lookup), a labelled folder, a blob
    container with images, and specs naming them."""
    tmp = tmp_path_factory.mktemp("secrets")
    name, container = unique("secrets"), unique("secretsimg")
    upload_folder_per_tag(blob_service, container, "s/", 1, seed=21)
    folder = tmp / "imgs" / "beach"
    folder.mkdir(parents=True)
    for item in scenes.dataset(["beach"], 2, seed=22, size=(64, 48)):
        (folder / item.name).write_bytes(item.data)
    spec = write_spec(tmp / "p.yaml", name, training={"folder": str(tmp / "imgs")})
    blob_spec = write_spec(tmp / "b.yaml", name, training={"container": container, "prefix": "s/"})
    env = settings_env(local_cv, azurite)
    env["CVOPS_INCOMING_CONTAINER"] = container  # classify-backlog queues only the app's incoming container
    assert CliRunner().invoke(cli, ["project", "apply", str(spec)], env=env).exit_code == 0
    image = tmp / "photo.jpg"
    image.write_bytes(scenes.generate("beach", 3, size=(64, 48)))
    return {"env": env, "spec": str(spec), "blob_spec": str(blob_spec), "name": name, "container": container,
            "image": str(image), "tmp": tmp, "azurite": azurite}


def _commands(w) -> dict[str, list[list[str]]]:
    """Every command that reads each secret setting."""
    spec, out = w["spec"], str(w["tmp"] / "model.zip")
    training = [["status", "--project", w["name"]], ["project", "apply", spec], ["train", "--spec", spec],
                ["evaluate", "--spec", spec], ["publish", "--spec", spec],
                ["export", "--spec", spec, "--platform", "ONNX", "--out", out],
                ["images", "upload", "--spec", spec], ["predict", "--spec", spec, w["image"]]]
    storage = [["classify-backlog", "--container", w["container"]], ["images", "lint", f"az://{w['container']}/s/"],
               ["images", "upload", "--spec", w["blob_spec"]], ["evaluate", "--spec", spec, "--holdout",
                                                                  f"az://{w['container']}/s/"],
               ["predict", "--spec", spec, f"az://{w['container']}/s/beach/x.jpg"]]
    return {"VISION_TRAINING_KEY": training,
            "VISION_PREDICTION_KEY": [["predict", "--spec", spec, w["image"]],
                                      ["predict", "--spec", spec, w["image"], "--no-store"]],
            "AZURE_STORAGE_CONNECTION_STRING": storage}


def _with_account_key(connection_string: str, key: str) -> str:
    return re.sub(r"AccountKey=[^;]*", lambda _: f"AccountKey={key}", connection_string)


def _run_and_scan(secret, env, args, caplog, where):
    caplog.clear()
    for argv in (args, [*args, "--json"]):
        result = CliRunner().invoke(cli, argv, env=env)
        label = f"{where}: cvops {' '.join(argv[:2])}"
        assert result.exit_code != EXIT_BUG, f"{label} ({secret.shape}) called itself a bug: {result.stderr}"
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            f"{label} raised {type(result.exception).__name__}"
        SCANNER.scan(secret, f"{label} stdout", result.stdout)
        SCANNER.scan(secret, f"{label} stderr", result.stderr)
        if "--json" in argv and result.stdout.strip():
            SCANNER.scan(secret, f"{label} --json (parsed)", json.dumps(json.loads(result.stdout.splitlines()[-1]
                                                                                   if result.exit_code else
                                                                                   result.stdout)))
    SCANNER.scan(secret, f"{where}: log records", "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records))
    SCANNER.scan(secret, f"{where}: captured log text", caplog.text)


@pytest.mark.parametrize("setting", ["VISION_TRAINING_KEY", "VISION_PREDICTION_KEY"])
def test_an_odd_custom_vision_key_is_never_printed_by_any_command_that_reads_it(world, setting, caplog, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    before = len(SCANNER.leaks)
    for secret in odd_secrets():
        env = {**world["env"], setting: secret.value}
        for args in _commands(world)[setting]:
            _run_and_scan(secret, env, args, caplog, f"{setting}={secret.shape}")
    assert SCANNER.leaks[before:] == []


def test_an_odd_key_given_as_an_option_is_never_printed(world, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    before = len(SCANNER.leaks)
    for secret in odd_secrets():
        _run_and_scan(secret, world["env"], ["--training-key", secret.value, "status", "--project", world["name"]],
                      caplog, f"--training-key={secret.shape}")
        _run_and_scan(secret, world["env"], ["--prediction-key", secret.value, "predict", "--spec", world["spec"],
                                             world["image"]], caplog, f"--prediction-key={secret.shape}")
    assert SCANNER.leaks[before:] == []


def test_an_odd_storage_account_key_or_connection_string_is_never_printed(world, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    before = len(SCANNER.leaks)
    base = world["env"]["AZURE_STORAGE_CONNECTION_STRING"]
    for secret in odd_secrets():
        for kind, conn in (("AccountKey", _with_account_key(base, secret.value)),
                           ("connection string", secret.value)):
            env = {**world["env"], "AZURE_STORAGE_CONNECTION_STRING": conn}
            for args in _commands(world)["AZURE_STORAGE_CONNECTION_STRING"]:
                _run_and_scan(secret, env, args, caplog, f"{kind}={secret.shape}")
    assert SCANNER.leaks[before:] == []


def test_an_odd_sas_token_in_the_connection_string_is_never_printed(world, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    before = len(SCANNER.leaks)
    azurite = world["azurite"]
    for secret in odd_secrets():
        conn = (f"BlobEndpoint={azurite.blob_endpoint};QueueEndpoint={azurite.queue_endpoint};"
                f"SharedAccessSignature=sv=2024-08-04&ss=bq&srt=sco&sp=rl&se=2030-01-01T00:00:00Z&sig={secret.value}")
        env = {**world["env"], "AZURE_STORAGE_CONNECTION_STRING": conn}
        for args in _commands(world)["AZURE_STORAGE_CONNECTION_STRING"][:3]:
            _run_and_scan(secret, env, args, caplog, f"SharedAccessSignature sig={secret.shape}")
    assert SCANNER.leaks[before:] == []


def test_a_key_with_a_line_break_is_named_with_what_to_do_not_blamed_on_the_endpoint(world, tmp_path, monkeypatch):
    """The reproduction: VISION_TRAINING_KEY=$'k1\\nk2' cvops status printed the key and blamed the endpoint."""
    monkeypatch.chdir(tmp_path)
    secret = odd_secrets(["newline"])[0]
    result = CliRunner().invoke(cli, ["status", "--project", world["name"], "--json"],
                                env={**world["env"], "VISION_TRAINING_KEY": secret.value})
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cvops: error: VISION_TRAINING_KEY holds a line break")
    assert "copy one key only" in lines[0] and "endpoint URL" not in lines[0]
    assert json.loads(result.stdout)["error"].startswith("VISION_TRAINING_KEY holds a line break")


def test_the_azurite_log_holds_no_sas_signature(azurite, blob_service):
    """Azurite's access log printed every request line, SAS query included; the local services start it --silent."""
    from datetime import UTC, datetime, timedelta

    import requests
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    from devkit.local_services import AZURITE_ACCOUNT, AZURITE_KEY

    container = unique("saslog")
    blob_service.create_container(container)
    blob_service.get_blob_client(container, "a.jpg").upload_blob(b"x")
    sas = generate_blob_sas(AZURITE_ACCOUNT, container, "a.jpg", account_key=AZURITE_KEY,
                            permission=BlobSasPermissions(read=True), expiry=datetime.now(UTC) + timedelta(minutes=5))
    response = requests.get(f"{azurite.blob_endpoint}/{container}/a.jpg?{sas}", timeout=10)
    assert response.status_code == 200 and response.content == b"x"
    text = azurite.log.read_text(errors="replace")
    assert "sig=" not in text and container not in text

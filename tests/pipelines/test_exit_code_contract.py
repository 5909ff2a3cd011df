"""The exit-code contract: every command, under each kind of environment failure, exits with the code docs/troubleshooting.md
documents (1 failed, 2 bad input or settings, 3 the service refused, 4 unavailable; 70 only for a bug) and prints
exactly one line on stderr, naming the thing and what to do. Against the real local Custom Vision service and
Azurite; "unreachable" is a loopback port nobody listens on. The retry budgets are shortened (the code paths are
the same) so unreachable services fail in milliseconds instead of minutes.

The reproductions from issue 9 (part 3.2) also run as real `python -m pipelines` processes, as a user runs them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
from click.testing import CliRunner
from flow_helpers import settings_env, unique, upload_folder_per_tag, write_spec

from cvops.retry import RetryPolicy
from devkit import scenes
from devkit.local_services import AZURITE_ACCOUNT, AZURITE_KEY, free_port
from pipelines.cli import EXIT_BUG, EXIT_CONFIG, EXIT_SERVICE, EXIT_TRANSIENT, cli

REPO = Path(__file__).resolve().parents[2]
WRONG_ACCOUNT_KEY = "A" * 86 + "=="
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05, max_total=2)
TABLE: dict[tuple[str, str], int] = {}


@pytest.fixture(scope="module", autouse=True)
def print_table():
    yield
    kinds = sorted({k for _, k in TABLE})
    commands = sorted({c for c, _ in TABLE})
    print("\nexit codes (command x failure kind; - = the command does not read it):")
    print(" | ".join(["command", *kinds]))
    for c in commands:
        print(" | ".join([c, *(str(TABLE.get((c, k), "-")) for k in kinds)]))


@pytest.fixture(autouse=True)
def short_retries(monkeypatch):
    monkeypatch.setattr("pipelines.service.RetryPolicy", lambda: FAST)
    monkeypatch.setattr("functions.context.RetryPolicy", lambda: FAST)
    monkeypatch.setattr("cvops.clients.STORAGE_RETRY", {"retry_total": 0})


@pytest.fixture(scope="module")
def w(local_cv, azurite, blob_service, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contract")
    name, container, incoming = unique("contract"), unique("contractimg"), unique("contractin")
    upload_folder_per_tag(blob_service, container, "s/", 1, seed=31)
    blob_service.create_container(incoming)
    (tmp / "imgs").mkdir()
    env = settings_env(local_cv, azurite)
    env["CVOPS_INCOMING_CONTAINER"] = container  # classify-backlog queues only the app's incoming container
    spec = write_spec(tmp / "p.yaml", name, training={"folder": str(tmp / "imgs")})
    blob_spec = write_spec(tmp / "b.yaml", name, training={"container": container, "prefix": "s/"})
    missing_spec = write_spec(tmp / "m.yaml", name, training={"container": "no-such-container", "prefix": "s/"})
    latin1 = tmp / "latin1.yaml"
    latin1.write_bytes(spec.read_bytes().replace(b"name: " + name.encode(), b"name: caf\xe9", 1))
    result = CliRunner().invoke(cli, ["project", "apply", str(spec), "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    image = tmp / "photo.jpg"
    image.write_bytes(scenes.generate("beach", 3, size=(64, 48)))
    closed = f"http://127.0.0.1:{free_port()}"
    app = {"CVOPS_STORAGE": azurite.connection_string, "VISION_PREDICTION_ENDPOINT": local_cv.endpoint,
           "VISION_PREDICTION_KEY": local_cv.prediction_key, "VISION_PROJECT_ID": json.loads(result.stdout)["project_id"],
           "VISION_PUBLISH_NAME": name, "CVOPS_INCOMING_CONTAINER": incoming,
           **{f"CVOPS_{k}_CONTAINER": unique(k.lower()) for k in ("ACCEPTED", "REVIEW", "REJECTED", "QUARANTINE",
                                                                   "RESULTS")}}
    return {"env": env, "spec": str(spec), "blob_spec": str(blob_spec), "missing_spec": str(missing_spec),
            "latin1": str(latin1), "container": container, "image": str(image), "closed": closed, "app": app,
            "tmp": tmp, "azurite": azurite}


def _key(conn: str, key: str) -> str:
    return re.sub(r"AccountKey=[^;]*", lambda _: f"AccountKey={key}", conn)


def _endpoints(conn: str, url: str) -> str:
    return re.sub(r"(Blob|Queue)Endpoint=[^;]*", lambda m: f"{m.group(1)}Endpoint={url}/{AZURITE_ACCOUNT}", conn)


# Commands and what each reads: "cv" (training key/endpoint), "pred" (prediction key), "storage", "spec", "report".
COMMANDS = {
    "project apply": (lambda w, s: ["project", "apply", s or w["spec"]], {"cv", "spec"}),
    "status": (lambda w, s: ["status", "--spec", s or w["spec"]], {"cv", "spec"}),
    "train": (lambda w, s: ["train", "--spec", s or w["spec"]], {"cv", "spec"}),
    "evaluate": (lambda w, s: ["evaluate", "--spec", s or w["spec"], "--report", w.get("report", str(w["tmp"]))],
                 {"cv", "spec", "report"}),
    "publish": (lambda w, s: ["publish", "--spec", s or w["spec"]], {"cv", "spec"}),
    "export": (lambda w, s: ["export", "--spec", s or w["spec"], "--platform", "ONNX",
                             "--out", w.get("report", str(w["tmp"])) + "/m.zip"], {"cv", "spec", "report"}),
    "predict": (lambda w, s: ["predict", "--spec", s or w["spec"], w["image"]], {"cv", "pred", "spec"}),
    "predict az://": (lambda w, s: ["predict", "--spec", s or w["spec"], f"az://{w.get('c', w['container'])}/x.jpg"],
                      {"cv", "storage", "spec"}),
    "images lint": (lambda w, s: ["images", "lint", "--spec", s or w["spec"], f"az://{w.get('c', w['container'])}/s/"],
                    {"storage", "spec"}),
    "images upload": (lambda w, s: ["images", "upload", "--spec", s or w.get("upload_spec", w["blob_spec"])],
                      {"cv", "storage", "spec"}),
    "classify-backlog": (lambda w, s: ["classify-backlog", "--container", w.get("c", w["container"]),
                                       "--queue", w.get("queue", "cvops-backlog")], {"storage"}),
    "function run-local": (lambda w, s: ["function", "run-local", "--once", "--settings", w["settings_file"]],
                           {"app"}),
}


def _case(w, kind: str, reads: set[str]) -> tuple[dict, dict, str | None, int] | None:
    """(env changes, w changes, spec, expected exit) for one failure kind, or None if the command reads nothing it
    concerns."""
    env, conn = w["env"], w["env"]["AZURE_STORAGE_CONNECTION_STRING"]
    if kind == "wrong key":
        if "cv" in reads:
            return {"VISION_TRAINING_KEY": "0" * 32}, {}, None, EXIT_SERVICE
        if "storage" in reads:
            return {"AZURE_STORAGE_CONNECTION_STRING": _key(conn, WRONG_ACCOUNT_KEY)}, {}, None, EXIT_SERVICE
        if "app" in reads:
            return {}, {"app": {"CVOPS_STORAGE": _key(w["app"]["CVOPS_STORAGE"], WRONG_ACCOUNT_KEY)}}, None, EXIT_SERVICE
    if kind == "unreachable endpoint":
        if "cv" in reads:
            return {"VISION_TRAINING_ENDPOINT": w["closed"]}, {}, None, EXIT_TRANSIENT
        if "storage" in reads:
            return {"AZURE_STORAGE_CONNECTION_STRING": _endpoints(conn, w["closed"])}, {}, None, EXIT_TRANSIENT
        if "app" in reads:
            return {}, {"app": {"CVOPS_STORAGE": _endpoints(w["app"]["CVOPS_STORAGE"], w["closed"])}}, None, \
                EXIT_TRANSIENT
    if kind == "missing container":
        if "storage" in reads:
            return {}, {"c": "no-such-container", "upload_spec": w["missing_spec"]}, None, EXIT_CONFIG
        if "app" in reads:
            return {}, {"app": {"CVOPS_INCOMING_CONTAINER": "no-such-incoming"}}, None, EXIT_CONFIG
    if kind == "bad setting":
        if "cv" in reads:
            return {"VISION_TRAINING_KEY": "k1\nk2"}, {}, None, EXIT_CONFIG
        if "storage" in reads:
            return {"AZURE_STORAGE_CONNECTION_STRING": _key(conn, "not base64!")}, {}, None, EXIT_CONFIG
        if "app" in reads:
            return {}, {"app": {"VISION_PREDICTION_KEY": "k1\nk2"}}, None, EXIT_CONFIG
    if kind == "non-Latin-1 key":
        if "cv" in reads:
            return {"VISION_TRAINING_KEY": "ключ-" + "0" * 27}, {}, None, EXIT_CONFIG
        if "app" in reads:
            return {}, {"app": {"VISION_PREDICTION_KEY": "ключ-" + "0" * 27}}, None, EXIT_CONFIG
    if kind == "unwritable report path" and "report" in reads:
        return {}, {"report": "/proc/nope"}, None, EXIT_CONFIG
    if kind == "non-UTF-8 spec" and "spec" in reads:
        return {}, {}, w["latin1"], EXIT_CONFIG
    del env
    return None


KINDS = ["wrong key", "unreachable endpoint", "missing container", "bad setting", "non-Latin-1 key",
         "unwritable report path", "non-UTF-8 spec"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_failure_kind_exits_with_its_documented_code_and_one_line(w, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv_for, reads = COMMANDS[command]
    checked = 0
    for kind in KINDS:
        case = _case(w, kind, reads)
        if case is None:
            continue
        env_changes, w_changes, spec, expected = case
        local = {**w, **{k: v for k, v in w_changes.items() if k != "app"}}
        settings_file = tmp_path / "local.settings.json"
        settings_file.write_text(json.dumps({"Values": {**w["app"], **w_changes.get("app", {})}}))
        local["settings_file"] = str(settings_file)
        result = CliRunner().invoke(cli, argv_for(local, spec), env={**w["env"], **env_changes})
        lines = result.stderr.splitlines()
        where = f"{command} under {kind}: exit {result.exit_code}, stderr {result.stderr!r}"
        assert result.exit_code != EXIT_BUG, where
        assert result.exit_code == expected, where
        assert len(lines) == 1 and lines[0].startswith("cvops: error: "), where
        assert "Traceback" not in result.stderr and "<?xml" not in result.stderr, where
        TABLE[(command, kind)] = result.exit_code
        checked += 1
    assert checked >= 2


def _blob_only_sas_connection_string(azurite) -> str:
    sas = generate_account_sas(AZURITE_ACCOUNT, AZURITE_KEY, ResourceTypes(service=True, container=True, object=True),
                               AccountSasPermissions(read=True, list=True, write=True, add=True, create=True),
                               datetime.now(UTC) + timedelta(hours=1))
    return (f"BlobEndpoint={azurite.blob_endpoint};QueueEndpoint={azurite.queue_endpoint};"
            f"SharedAccessSignature={sas}")


def test_the_issue_reproductions_exit_with_one_readable_line_as_real_processes(w, tmp_path):
    """Issue 9 part 3.2: each of these exited 70 with an 11-line XML error (or a UnicodeDecodeError)."""
    conn = w["env"]["AZURE_STORAGE_CONNECTION_STRING"]

    def settings(**changes: str) -> str:
        path = tmp_path / f"settings-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps({"Values": {**w["app"], **changes}}))
        return str(path)

    backlog = ["classify-backlog", "--container", w["container"]]
    cases = [
        ("classify-backlog, wrong storage key", {"AZURE_STORAGE_CONNECTION_STRING": _key(conn, WRONG_ACCOUNT_KEY)},
         backlog, EXIT_SERVICE, "refused the credential"),
        ("classify-backlog, blob-only SAS", {"AZURE_STORAGE_CONNECTION_STRING":
                                             _blob_only_sas_connection_string(w["azurite"])},
         backlog, EXIT_SERVICE, "does not allow it"),
        ("classify-backlog --queue Bad_Queue!", {}, [*backlog, "--queue", "Bad_Queue!"], EXIT_CONFIG,
         "--queue 'Bad_Queue!' is not a valid queue name"),
        ("run-local, wrong key", {}, ["function", "run-local", "--once", "--settings",
                                      settings(CVOPS_STORAGE=_key(w["app"]["CVOPS_STORAGE"], WRONG_ACCOUNT_KEY))],
         EXIT_SERVICE, "refused the credential"),
        ("run-local, bad base64 key", {}, ["function", "run-local", "--once", "--settings",
                                           settings(CVOPS_STORAGE=_key(w["app"]["CVOPS_STORAGE"], "abc!"))],
         EXIT_CONFIG, "AccountKey in CVOPS_STORAGE is not valid base64"),
        ("run-local, unreachable storage", {}, ["function", "run-local", "--once", "--settings",
                                                settings(CVOPS_STORAGE=_endpoints(w["app"]["CVOPS_STORAGE"],
                                                                                  w["closed"]))],
         EXIT_TRANSIENT, "could not be reached"),
        ("run-local, missing incoming container", {}, ["function", "run-local", "--once", "--settings",
                                                       settings(CVOPS_INCOMING_CONTAINER="no-such-incoming")],
         EXIT_CONFIG, "no-such-incoming does not exist"),
        ("evaluate --report /proc/nope", {}, ["evaluate", "--spec", w["spec"], "--report", "/proc/nope"], EXIT_CONFIG,
         "--report /proc/nope"),
        ("a spec that is not UTF-8", {}, ["status", "--spec", w["latin1"]], EXIT_CONFIG, "is not UTF-8 text"),
        ("a key with non-Latin-1 characters", {"VISION_TRAINING_KEY": "ключ" + "0" * 28},
         ["status", "--spec", w["spec"]], EXIT_CONFIG, "VISION_TRAINING_KEY holds a non-ASCII character"),
    ]

    def run(case):
        _, env_changes, argv, _, _ = case
        return subprocess.run([sys.executable, "-m", "pipelines", *argv], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                 **w["env"], **env_changes})

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, cases))
    for (what, _, _, expected, says), result in zip(cases, results, strict=True):
        lines = result.stderr.splitlines()
        assert (result.returncode, len(lines)) == (expected, 1), f"{what}: {result.returncode} {result.stderr!r}"
        assert lines[0].startswith("cvops: error: ") and says in lines[0], f"{what}: {lines[0]}"

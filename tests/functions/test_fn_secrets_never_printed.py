"""The secrets suite (Function App): every secret app setting, given odd values, through the blob trigger, the HTTP
trigger and `cvops function run-local`; no exception text (str, repr, traceback), HTTP body, log record or blob the
app wrote carries the value in any form (tests/secret_scan.py), against the real Azurite and local service.
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback

import azure.functions as func
import pytest
from click.testing import CliRunner
from fn_helpers import registered, scene

from pipelines.cli import EXIT_BUG, cli
from tests.secret_scan import Scanner, odd_secrets

SCANNER = Scanner()
SECRET_SETTINGS = ("VISION_PREDICTION_KEY", "VISION_MODERATION_KEY", "CVOPS_STORAGE AccountKey", "CVOPS_STORAGE")


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    yield
    print(f"\nsecrets suite (Function App): {len(SCANNER.values)} secret values x outputs = {SCANNER.scanned} scans, "
          f"{len(SCANNER.leaks)} leaks")


def _value_for(setting: str, secret, function_env) -> tuple[str, str]:
    """(app setting name, value) that puts ``secret`` where ``setting`` says."""
    if setting == "CVOPS_STORAGE AccountKey":
        conn = function_env.settings["CVOPS_STORAGE"]
        return "CVOPS_STORAGE", re.sub(r"AccountKey=[^;]*", lambda _: f"AccountKey={secret.value}", conn)
    return setting, secret.value


def _written(function_env) -> str:
    """Every blob the app wrote (records, sidecars, copies' names), as one text."""
    parts = []
    for key in ("accepted", "review", "rejected", "quarantine", "results"):
        for name in function_env.names(key):
            parts.append(name)
            parts.append(function_env.read(key, name).decode("utf-8", "replace") if not name.endswith(".jpg") else "")
    return "\n".join(parts)


def _logs(caplog) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records) + caplog.text


def _exception_text(exc: BaseException) -> str:
    return f"{exc}\n{exc!r}\n{''.join(traceback.format_exception(exc))}"


@pytest.mark.parametrize("setting", SECRET_SETTINGS)
def test_an_odd_secret_setting_never_reaches_an_exception_an_http_body_a_log_or_a_record(function_env, setting,
                                                                                        caplog):
    caplog.set_level(logging.DEBUG)
    before = len(SCANNER.leaks)
    good = dict(function_env.settings)
    for i, secret in enumerate(odd_secrets()):
        name, value = _value_for(setting, secret, function_env)
        function_env.set(**{name: good[name]})
        function_env.upload(f"s{i}.jpg", scene("beach", seed=i))
        function_env.set(**{name: value})
        caplog.clear()
        where = f"{setting}={secret.shape}"
        try:
            registered("route_new_blob")(function_env.client(f"s{i}.jpg"))
        except Exception as exc:  # the host logs what the trigger raises: its text must be clean too
            SCANNER.scan(secret, f"{where}: blob-trigger exception", _exception_text(exc))
        request = func.HttpRequest(method="POST", url="/api/classify", body=scene("city", seed=i), params={},
                                   headers={"Content-Type": "application/octet-stream"})
        response = registered("classify_http")(request)
        SCANNER.scan(secret, f"{where}: HTTP {response.status_code} body", response.get_body())
        SCANNER.scan(secret, f"{where}: HTTP headers", json.dumps(dict(response.headers)))
        SCANNER.scan(secret, f"{where}: log", _logs(caplog))
        function_env.set(**{name: good[name]})
        SCANNER.scan(secret, f"{where}: blobs written", _written(function_env))
    assert SCANNER.leaks[before:] == []


@pytest.mark.parametrize("setting", ["VISION_PREDICTION_KEY", "CVOPS_STORAGE AccountKey"])
def test_run_local_with_an_odd_secret_setting_prints_none_of_it(function_env, setting, caplog, tmp_path,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    before = len(SCANNER.leaks)
    function_env.upload("r.jpg", scene("forest", seed=7))
    saved = dict(os.environ)  # run-local puts the settings file's Values in the environment, as the host does
    try:
        for secret in odd_secrets(["newline", "crlf-trailing", "non-latin-1", "percent", "10kb"]):
            name, value = _value_for(setting, secret, function_env)
            path = tmp_path / "local.settings.json"
            path.write_text(json.dumps({"IsEncrypted": False, "Values": {**function_env.settings, name: value}}))
            caplog.clear()
            result = CliRunner().invoke(cli, ["function", "run-local", "--once", "--settings", str(path), "--json"])
            where = f"run-local {setting}={secret.shape}"
            assert result.exit_code != EXIT_BUG, f"{where}: {result.stderr}"
            SCANNER.scan(secret, f"{where}: stdout", result.stdout)
            SCANNER.scan(secret, f"{where}: stderr", result.stderr)
            SCANNER.scan(secret, f"{where}: log", _logs(caplog))
            SCANNER.scan(secret, f"{where}: blobs written", _written(function_env))
            os.environ.clear()
            os.environ.update(saved)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert SCANNER.leaks[before:] == []


def test_a_prediction_key_with_a_line_break_is_named_by_the_trigger_and_the_http_answer(function_env, caplog):
    """The reproduction: the Function's log, the blob-trigger exception and the HTTP 500 body printed the key."""
    secret = odd_secrets(["newline"])[0]
    function_env.upload("n.jpg", scene("beach"))
    function_env.set(VISION_PREDICTION_KEY=secret.value)
    with pytest.raises(Exception) as caught:
        registered("route_new_blob")(function_env.client("n.jpg"))
    assert "VISION_PREDICTION_KEY holds a line break" in str(caught.value)
    response = registered("classify_http")(func.HttpRequest(method="POST", url="/api/classify", body=scene("city"),
                                                            params={}))
    answer = json.loads(response.get_body())
    assert response.status_code == 500 and answer["setting"] == "VISION_PREDICTION_KEY" and answer["error_id"]
    assert any(answer["error_id"] in r.getMessage() and "holds a line break" in r.getMessage()
               for r in caplog.records)


def test_an_http_error_answer_names_no_endpoint_or_project(function_env):
    """500/503 bodies of /api/classify showed the internal endpoint and the project id; now a generic message and an
    error id (the log has the detail)."""
    function_env.set(VISION_PREDICTION_ENDPOINT="http://127.0.0.1:9")  # nothing listens: transient, 503
    response = registered("classify_http")(func.HttpRequest(method="POST", url="/api/classify", body=scene("city"),
                                                            params={}))
    body = response.get_body().decode()
    assert response.status_code == 503 and json.loads(body)["error_id"]
    assert "127.0.0.1" not in body and function_env.settings["VISION_PROJECT_ID"] not in body

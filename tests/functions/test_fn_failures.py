"""Failures: transient ones raise so the host retries (and poisons), permanent ones are named, secrets never leak."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest
from fn_helpers import CLASSES, registered, scene, trained_service

from cvops.errors import ConfigurationError, TransientServiceError
from cvops.retry import RetryPolicy
from devkit.local_services import AZURITE_KEY, free_port
from functions import context
from functions.config import load_config
from functions.handler import observe


def deliver_all(function_env, names, threads):
    """Deliver ``names`` from ``threads`` workers at once, as the host's thread pool does."""
    outcomes, errors = [], []
    pending = list(names)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                name = pending.pop()
            try:
                registered("route_new_blob")(function_env.client(name))
            except Exception as exc:
                errors.append(exc)

    with observe(outcomes.append):
        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    return outcomes, errors


def use_service(function_env, service, project):
    function_env.set(VISION_PREDICTION_ENDPOINT=service.endpoint, VISION_PREDICTION_KEY=service.prediction_key,
                     VISION_PROJECT_ID=project.project_id, VISION_PUBLISH_NAME=project.publish_name)


def test_a_429_storm_is_absorbed_and_no_429_reaches_the_host(function_env, start_local_cv):
    service, project = trained_service(start_local_cv, prediction_tps=4)
    use_service(function_env, service, project)
    function_env.set(CVOPS_PREDICTION_TPS="1000")  # no client pacing: the service's 429s must be handled
    names = [f"storm/{i}.jpg" for i in range(12)]
    for i, name in enumerate(names):
        function_env.upload(name, scene(CLASSES[i % 3], seed=i))
    outcomes, errors = deliver_all(function_env, names, threads=6)
    assert errors == []
    assert len(outcomes) == 12 and len(function_env.records()) == 12
    assert sum(o.throttled for o in outcomes) > 0
    assert all(o.record["outcome"] != "quarantine" for o in outcomes)


def test_a_503_burst_is_retried_to_success(function_env, start_local_cv):
    # every third call fails: at least two of the eight predictions see a 503, whatever the threads' order
    service, project = trained_service(start_local_cv, fault_every=3)
    use_service(function_env, service, project)
    names = [f"burst/{i}.jpg" for i in range(8)]
    for i, name in enumerate(names):
        function_env.upload(name, scene(CLASSES[i % 3], seed=20 + i))
    outcomes, errors = deliver_all(function_env, names, threads=4)
    assert errors == []
    assert len(function_env.records()) == 8
    assert sum(o.retries for o in outcomes) > 0


def test_a_service_that_stays_down_fails_the_invocation_and_writes_nothing(function_env):
    function_env.set(VISION_PREDICTION_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    context.install(context.build_context(load_config(), retry_policy=RetryPolicy(max_attempts=2, base_delay=0.01)))
    function_env.upload("down.jpg", scene("beach"))
    with pytest.raises(TransientServiceError):
        registered("route_new_blob")(function_env.client("down.jpg"))
    assert function_env.names("results") == [] and function_env.names("accepted") == []
    context.install(None)
    function_env.set(VISION_PREDICTION_ENDPOINT=function_env.settings["VISION_PREDICTION_ENDPOINT"])


def test_a_wrong_key_is_a_configuration_error_naming_the_setting_and_never_logged(function_env, caplog):
    secret = "wrong-key-" + uuid.uuid4().hex
    function_env.set(VISION_PREDICTION_KEY=secret)
    function_env.upload("key.jpg", scene("beach"))
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigurationError) as caught:
        registered("route_new_blob")(function_env.client("key.jpg"))
    assert caught.value.setting == "VISION_PREDICTION_KEY"
    assert "VISION_PREDICTION_KEY" in str(caught.value)
    assert secret not in str(caught.value) and secret not in caplog.text
    assert function_env.names("results") == [] and function_env.names("quarantine") == []


@pytest.mark.parametrize("setting, value", [("VISION_PUBLISH_NAME", "no-such-publication"),
                                            ("VISION_PROJECT_ID", str(uuid.UUID(int=7)))])
def test_an_unknown_publish_name_or_project_names_its_setting(function_env, setting, value):
    function_env.set(**{setting: value})
    function_env.upload("p.jpg", scene("forest"))
    with pytest.raises(ConfigurationError) as caught:
        registered("route_new_blob")(function_env.client("p.jpg"))
    assert caught.value.setting == setting, str(caught.value)
    assert function_env.names("results") == []


def test_a_missing_required_setting_is_named(function_env, monkeypatch):
    monkeypatch.delenv("VISION_PUBLISH_NAME")
    function_env.upload("s.jpg", scene("city"))
    with pytest.raises(ConfigurationError, match="VISION_PUBLISH_NAME is not set"):
        registered("route_new_blob")(function_env.client("s.jpg"))


def test_an_output_inside_the_incoming_container_is_refused_before_it_loops(function_env):
    function_env.set(CVOPS_REVIEW_CONTAINER=f"{function_env.incoming}/review")
    with pytest.raises(ConfigurationError, match="CVOPS_REVIEW_CONTAINER points into the incoming container"):
        load_config()


def test_no_key_or_account_key_appears_in_logs_or_records(function_env, caplog):
    context.current().prediction.config.enable_http_logger = True  # msrest then logs every request header
    with caplog.at_level(logging.DEBUG):
        function_env.upload("ok.jpg", scene("city"))
        outcome = function_env.deliver("ok.jpg")
    assert any(r.name == "msrest.http_logger" for r in caplog.records)  # every request and answer was logged
    everything = caplog.text + repr(function_env.records()) + repr(outcome.record)
    assert function_env.settings["VISION_PREDICTION_KEY"] not in everything
    assert AZURITE_KEY not in everything
    assert "sig=" not in everything.replace("sig=REDACTED", "")


def test_a_missing_output_container_names_its_setting(function_env):
    function_env.set(CVOPS_RESULTS_CONTAINER="no-such-results")
    function_env.upload("c.jpg", scene("beach"))
    with pytest.raises(ConfigurationError) as caught:
        registered("route_new_blob")(function_env.client("c.jpg"))
    assert caught.value.setting == "CVOPS_RESULTS_CONTAINER"


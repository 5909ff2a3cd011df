"""`cvops function run-local --once`: its status reflects how each blob ended, not whether some attempt failed.

Transient failures are real ones: the local Custom Vision service answers a share of its calls with 503
(``--fault-rate``) and the app's retry policy is cut to one attempt, so some invocations fail and the loop retries
them as the host would, until each blob is routed or poisoned after host.json's threshold.
"""

from __future__ import annotations

import json
from collections import Counter

from click.testing import CliRunner
from fn_helpers import CLASSES, scene, trained_service

from cvops.retry import RetryPolicy
from functions import context
from functions.config import load_config
from pipelines.cli import cli
from pipelines.run_local import RunStats

IMAGES = 50
# One prediction call per invocation, and every FAULT_EVERY-th call of the service answers 503: at least 50 // 7 = 7
# invocations fail and are retried, whatever the threads' order. A blob is poisoned only if five of its attempts in a
# row each land on a failing call; the status must match how the blobs ended either way, which the test checks.
FAULT_EVERY = 7


def test_run_local_once_is_ok_when_every_blob_ended_routed_after_transient_failures(function_env, start_local_cv,
                                                                                    tmp_path):
    service, project = trained_service(start_local_cv, fault_every=FAULT_EVERY)
    function_env.set(VISION_PREDICTION_ENDPOINT=service.endpoint, VISION_PREDICTION_KEY=service.prediction_key,
                     VISION_PROJECT_ID=project.project_id, VISION_PUBLISH_NAME=project.publish_name)
    context.install(context.build_context(load_config(), retry_policy=RetryPolicy(max_attempts=1, base_delay=0)))
    names = [f"faulty/{i}.jpg" for i in range(IMAGES)]
    for i, name in enumerate(names):
        function_env.upload(name, scene(CLASSES[i % 3], seed=100 + i))
    try:
        result = CliRunner().invoke(cli, ["function", "run-local", "--once", "--json",
                                          "--settings", str(tmp_path / "none.json")])
    finally:
        context.install(None)
    data = json.loads(result.stdout)
    assert data["failed"] > 0, data  # attempts failed on the way, and are still reported
    per_blob = Counter(r["blob"]["name"] for r in function_env.records())
    if not data["poisoned"]:
        assert sorted(per_blob) == sorted(names) and set(per_blob.values()) == {1}  # each routed exactly once
        assert data["ok"] is True and result.exit_code == 0, data
        assert data["unresolved"] == [] and data["recovered"] > 0
    else:  # rare: a blob failed five times in a row; the run must say so
        assert data["ok"] is False and result.exit_code == 1
        assert data["unresolved"] == sorted(f"blob {n}" for n in data["poisoned"])


def test_the_status_is_the_final_state_of_each_blob_and_message():
    stats = RunStats()
    for key, worked in [("blob a", False), ("blob a", True), ("message 1", False), ("message 1", True),
                        ("blob b", True)]:
        stats.attempt(key, worked)
    assert stats.ok and (stats.failed, stats.succeeded, stats.recovered) == (2, 3, 2)
    stats.attempt("blob c", False)
    assert not stats.ok and stats.unresolved == ["blob c"]
    stats.forget("blob c")  # deleted since it was listed: nothing left to route
    assert stats.ok
    stats.poisoned.append("d")
    assert not stats.ok and stats.to_dict()["ok"] is False

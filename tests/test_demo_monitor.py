"""The demo's monitoring stage, smaller: two batches routed by the Function App (`cvops function run-local`, with an
in-process model so no training is needed), then `cvops monitor` over the records: the new, darker camera's slice is
flagged by name, the steady camera's is not, and the report is written where the stage says."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError

from devkit import scenes
from devkit.demo import Demo, DemoSize
from devkit.demo_monitor import DRIFTING, STEADY, camera_batch, run_monitor_stage
from functions import images, routes
from tests.onnx_exports import build_zip

pytestmark = [pytest.mark.azurite, pytest.mark.slow]

_runs = itertools.count(1)


@pytest.fixture
def app_env(azurite, blob_service, tmp_path):
    run = f"dm{next(_runs)}x{int(time.time() * 1000) % 100000}"
    containers = {route.setting: f"{run}-{route.key}" for route in (routes.INCOMING, *routes.OUTPUTS)}
    for name in containers.values():
        # The name is this run's own: "already exists" is an earlier attempt of a request the SDK retried (a fresh-clone
        # run once met it here, under load)
        with contextlib.suppress(ResourceExistsError):
            blob_service.create_container(name)
    model = tmp_path / "model.zip"
    model.write_bytes(build_zip())
    env = {**os.environ, **containers, "CVOPS_STORAGE": azurite.connection_string,
           "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "CVOPS_MODEL": str(model),
           "CVOPS_POLICY": json.dumps({"version": "demo-monitor", "default_threshold": 0.6, "review_band": 0.2}),
           "NO_COLOR": "1"}
    yield env
    for name in containers.values():
        blob_service.delete_container(name)


def test_the_drifting_camera_is_flagged_by_name_and_the_steady_one_is_not(app_env, blob_service, tmp_path, capsys):
    demo = Demo(root=tmp_path, size=DemoSize(), env=app_env)

    summary = run_monitor_stage(demo.cvops, app_env, blob_service, tmp_path / "reports", classes=scenes.CLASSES,
                                per_slice=20)

    assert summary["problems"] == [] and summary["exit_code"] == 1
    assert DRIFTING in summary["flagged"] and STEADY not in summary["flagged"]
    drift = [f for f in summary["findings"] if f["slice"] == DRIFTING and f["rule"] == "drift"]
    assert "luminance_mean" in {f["feature"] for f in drift}
    assert (summary["records"], summary["baseline_images"]) == (40, 20)
    assert Path(summary["report"]).is_file() and Path(summary["report"]).name == "monitor.html"
    assert "$ cvops monitor --since" in capsys.readouterr().out


def test_the_new_cameras_images_are_darker_and_carry_its_exif():
    steady = images.normalise(camera_batch(STEADY, scenes.CLASSES, 1, 3)[0][1])
    darker = images.normalise(camera_batch(DRIFTING, scenes.CLASSES, 1, 3)[0][1])
    assert darker.summary()["exif"] == {"make": "Fabrikam", "model": "NightOwl 2"}
    assert darker.statistics["luminance_mean"] < 0.6 * steady.statistics["luminance_mean"]

"""Microsoft's Python quickstart (examples/quickstart.py) runs unchanged against the local service: only the endpoint
and the keys differ from what it would use against Azure."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from devkit import scenes
from devkit.local_services import REPO_ROOT


@pytest.fixture
def quickstart_images(tmp_path):
    """The quickstart's folder layout, with generated pictures: woods for Hemlock, shores for Japanese Cherry."""
    for folder, prefix, label in (("Hemlock", "hemlock", "forest"), ("Japanese_Cherry", "japanese_cherry", "beach")):
        (tmp_path / folder).mkdir()
        for n in range(1, 11):
            (tmp_path / folder / f"{prefix}_{n}.jpg").write_bytes(scenes.generate(label, 500 + n))
    (tmp_path / "Test").mkdir()
    (tmp_path / "Test" / "test_image.jpg").write_bytes(scenes.generate("forest", 9001))
    return tmp_path


@pytest.mark.timeout(120)
def test_microsoft_quickstart_passes_with_only_endpoint_and_keys_changed(local_cv, quickstart_images):
    env = {
        **os.environ,
        "VISION_TRAINING_ENDPOINT": local_cv.endpoint,
        "VISION_TRAINING_KEY": local_cv.training_key,
        "VISION_PREDICTION_KEY": local_cv.prediction_key,
        "VISION_PREDICTION_RESOURCE_ID": local_cv.prediction_resource_id,
        "QUICKSTART_IMAGES": str(quickstart_images),
        "QUICKSTART_POLL_SECONDS": "0.5",
        "PYTHONPATH": str(REPO_ROOT),
    }
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "quickstart.py")], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=110, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Training status: Completed" in proc.stdout and "Done!" in proc.stdout
    scores = dict(re.findall(r"^\t(.+): ([\d.]+)%$", proc.stdout, flags=re.MULTILINE))
    assert set(scores) == {"Hemlock", "Japanese Cherry"}
    assert float(scores["Hemlock"]) > float(scores["Japanese Cherry"])

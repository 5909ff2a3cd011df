"""Progress bars on a terminal, silence everywhere else (issue 3): each long command draws rich progress on stderr when
stderr is a terminal, and writes nothing there with ``--json`` or when stderr is a pipe (CI logs, scripts).

The commands run as an operator runs them, ``python -m pipelines ...`` in a child process, with stderr on a
pseudo-terminal or a pipe; clicking through CliRunner would never be a terminal. Services: the local Custom Vision
service and Azurite (blob and queue).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from flow_helpers import unique, upload_folder_per_tag

from devkit import scenes

pty = pytest.importorskip("pty")

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
HIDE_CURSOR = b"\x1b[?25l"  # rich's live display starts by hiding the cursor


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: bytes

    @property
    def stderr_text(self) -> str:
        return ANSI.sub(b"", self.stderr).decode("utf-8", "replace")


def cvops(args: list[str], env: dict[str, str], cwd: Path, *, terminal: bool, timeout: float = 120) -> Ran:
    """Run `cvops ARGS` with stderr on a pseudo-terminal (``terminal``) or a pipe; stdout is always a pipe."""
    child_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), "TERM": "xterm-256color", "COLUMNS": "100",
                 **env}
    command = [sys.executable, "-m", "pipelines", *args]
    if not terminal:
        done = subprocess.run(command, capture_output=True, env=child_env, cwd=cwd, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        return Ran(done.returncode, done.stdout.decode(), done.stderr)
    main, side = pty.openpty()
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=side, stdin=subprocess.DEVNULL,
                                env=child_env, cwd=cwd)
        os.close(side)
        side = -1
        stderr, stdout = bytearray(), bytearray()
        streams = {main: stderr, proc.stdout.fileno(): stdout}
        deadline = time.monotonic() + timeout
        while streams and time.monotonic() < deadline:
            ready, _, _ = select.select(list(streams), [], [], 0.5)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the terminal's other side closed
                    chunk = b""
                if chunk:
                    streams[fd] += chunk
                else:
                    del streams[fd]
        if streams:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        return Ran(proc.returncode, stdout.decode(), bytes(stderr))
    finally:
        os.close(main)
        if side >= 0:
            os.close(side)


def test_lint_draws_a_bar_on_a_terminal_and_nothing_with_json_or_on_a_pipe(tmp_path):
    folder = tmp_path / "set"
    for item in scenes.dataset(scenes.CLASSES, 5, seed=3, size=(64, 48)):
        path = folder / item.labels[0] / item.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.data)

    shown = cvops(["images", "lint", str(folder)], {}, tmp_path, terminal=True)
    assert shown.exit_code == 0, shown.stderr_text
    assert HIDE_CURSOR in shown.stderr and "reading 20 images" in shown.stderr_text
    assert "20/20" in shown.stderr_text
    assert "20 images from" in shown.stdout  # the summary stays on stdout

    as_json = cvops(["images", "lint", str(folder), "--json"], {}, tmp_path, terminal=True)
    assert (as_json.exit_code, as_json.stderr) == (0, b"")
    assert json.loads(as_json.stdout)["images"] == 20

    piped = cvops(["images", "lint", str(folder)], {}, tmp_path, terminal=False)
    assert (piped.exit_code, piped.stderr) == (0, b"")
    assert "20 images from" in piped.stdout and "\x1b[" not in piped.stdout


@pytest.mark.emulator
@pytest.mark.azurite
@pytest.mark.slow  # about 12 s: 12 child processes and two trainings
def test_upload_train_evaluate_and_backlog_show_progress_on_a_terminal_and_stay_quiet_otherwise(
        local_cv, azurite, blob_service, tmp_path):
    name, training, holdout, incoming = unique("progress"), unique("training"), unique("holdout"), unique("incoming")
    upload_folder_per_tag(blob_service, training, "scenes/", 5, seed=41)
    upload_folder_per_tag(blob_service, holdout, "scenes/", 2, seed=42)
    blob_service.create_container(incoming)
    for i in range(3):
        blob_service.get_blob_client(incoming, f"old/{i}.jpg").upload_blob(scenes.generate("beach", i, size=(64, 48)))
    spec = tmp_path / "project.yaml"
    spec.write_text(f"""
project: {{name: {name}, classification_type: Multiclass, domain: General (compact)}}
tags: [{{name: beach}}, {{name: forest}}, {{name: mountain}}, {{name: city}}]
data: {{training: {{container: {training}, prefix: scenes/}}, holdout: {{container: {holdout}, prefix: scenes/}}}}
""")
    env = {"VISION_TRAINING_ENDPOINT": local_cv.endpoint, "VISION_TRAINING_KEY": local_cv.training_key,
           "VISION_PREDICTION_ENDPOINT": local_cv.endpoint, "VISION_PREDICTION_KEY": local_cv.prediction_key,
           "VISION_PREDICTION_RESOURCE_ID": local_cv.prediction_resource_id,
           "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
           "CVOPS_BACKLOG_QUEUE": f"{incoming}-q", "CVOPS_INCOMING_CONTAINER": incoming}
    applied = cvops(["project", "apply", str(spec)], env, tmp_path, terminal=False)
    assert applied.exit_code == 0, applied.stderr_text

    # On a terminal: each long step draws its own live display, then the summary goes to stdout.
    steps = [(["images", "upload", "--spec", str(spec)], "uploading 20 images"),
             (["train", "--spec", str(spec), "--wait", "--timeout", "120"], "training Iteration 1"),
             (["evaluate", "--spec", str(spec)], "predicting 8 holdout images"),
             (["classify-backlog", "--container", incoming], f"queueing blobs of {incoming}")]
    for args, description in steps:
        shown = cvops(args, env, tmp_path, terminal=True)
        assert shown.exit_code == 0, f"{args[0]}: {shown.stderr_text}"
        assert HIDE_CURSOR in shown.stderr and description in shown.stderr_text, (args, shown.stderr_text)

    # With --json on the same terminal, and on a pipe: nothing on stderr, and --json's stdout is one JSON document.
    quiet = [["images", "upload", "--spec", str(spec)],  # a rerun: still lists what the project holds
             ["train", "--spec", str(spec), "--wait", "--force", "--timeout", "120"],
             ["evaluate", "--spec", str(spec)],
             ["classify-backlog", "--container", incoming]]
    for args in quiet:
        as_json = cvops([*args, "--json"], env, tmp_path, terminal=True)
        assert (as_json.exit_code, as_json.stderr_text) == (0, ""), args
        assert json.loads(as_json.stdout)["ok"] is True
    for args in (quiet[0], quiet[2], quiet[3]):
        piped = cvops(args, env, tmp_path, terminal=False)
        assert (piped.exit_code, piped.stderr) == (0, b""), (args, piped.stderr)
        assert piped.stdout.strip() and "\x1b[?25l" not in piped.stdout

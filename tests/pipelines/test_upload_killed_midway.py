"""`cvops images upload` killed halfway (SIGKILL, a real child process, the real local service and Azurite): the
rerun sends only what was not uploaded.

Why it resent everything before: the batches in flight when the process dies (``--concurrency`` of them) are created
by the service anyway, but the answers that would have recorded their keys are lost, so the rerun could not tell
those images from missing ones. The service here adds 300 ms to every call, so a batch's creation and the call that
records it are far enough apart for the kill to land between them, as it does on a real network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from flow_helpers import World, settings_env, unique, upload_folder_per_tag, write_spec

from cvops import clients
from pipelines.upload import already_uploaded, pack_pending

pytestmark = [pytest.mark.emulator, pytest.mark.azurite]

PER_TAG = 48  # 192 images: 3 batches of 64, sent one at a time
LATENCY_MS = 300


def _cvops(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines", *args]


def test_a_rerun_after_a_kill_sends_only_the_images_that_were_not_uploaded(start_local_cv, azurite, blob_service,
                                                                          tmp_path, monkeypatch):
    service = start_local_cv(latency_ms=LATENCY_MS)
    monkeypatch.chdir(tmp_path)
    env = settings_env(service, azurite)
    name, container = unique("killed"), unique("killedtrain")
    listed = upload_folder_per_tag(blob_service, container, "s/", PER_TAG, seed=5)
    spec = write_spec(tmp_path / "p.yaml", name, training={"container": container, "prefix": "s/"})
    world = World(env, spec, name, container, "", blob_service)
    assert world.run("project", "apply", str(spec))[0].exit_code == 0
    client = clients.training_client(service.endpoint, service.training_key)
    project_id = next(p.id for p in client.get_projects() if p.name == name)
    upload = _cvops("images", "upload", "--spec", str(spec), "--json", "--concurrency", "1")
    child_env = {**os.environ, **env}

    started = time.monotonic()  # the kill and the rerun; set-up before
    child = subprocess.Popen(upload, env=child_env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    created = threading.Event()

    def watch(offset: float) -> None:
        # Four staggered watchers: each call takes LATENCY_MS, so together they see the first images within ~75 ms.
        time.sleep(offset)
        # 60 s: the child, the local service and Azurite share the machine with the rest of the suite; a fresh-clone
        # run once took over 20 s to create its first image (nothing else changes what is asserted).
        while not created.is_set() and child.poll() is None and time.monotonic() - started < 60:
            if client.get_image_count(project_id, tagging_status="All") > 0:
                created.set()
                child.send_signal(signal.SIGKILL)

    watchers = [threading.Thread(target=watch, args=(i * LATENCY_MS / 4000,)) for i in range(4)]
    for w in watchers:
        w.start()
    for w in watchers:
        w.join()
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the upload ended before it could be killed halfway"

    rerun = subprocess.run(upload, env=child_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    report = json.loads(rerun.stdout)
    assert rerun.returncode == 0, rerun.stderr
    # What the killed run uploaded (its batch in flight included: the service finished it) is not sent again, and
    # everything else is.
    assert 0 < report["skipped_already_uploaded"] < listed
    assert report["duplicates"] == 0
    assert report["created"] == listed - report["skipped_already_uploaded"]
    assert client.get_image_count(project_id, tagging_status="All") == listed
    print(f"\nkilled upload: rerun skipped {report['skipped_already_uploaded']} of {listed}, "
          f"created {report['created']}, {report['duplicates']} resent; {time.monotonic() - started:.1f} s")


def test_a_pending_batch_counts_only_when_every_entry_has_its_image():
    digests = [f"{i:016x}" for i in range(5)]
    meta = {"cvops": "1", **pack_pending(digests)}
    assert already_uploaded([meta] * 5) == set(digests)
    assert already_uploaded([meta] * 4) == set()  # one entry failed, which one is unknown: send the batch again
    confirmed = {"cvops": "1", "cvops_k0": digests[0]}
    assert already_uploaded([meta] * 4 + [confirmed]) == {digests[0]}
    assert already_uploaded([{"cvops": "2", **pack_pending(digests)}] * 5) == set()  # not ours

"""What one hostile 500 MB upload costs the Function App's process: the old delivery against the BlobClient trigger.

Starts Azurite (data on disk: half a gigabyte would sit in its memory otherwise), uploads one blob of ``--megabytes``
(500 MB by default, Azure's limit for a blob trigger's input) of zeros under an image's name, then routes it twice, each
time in a fresh Python process that has imported function_app.py and built the app's context (as the worker has):

* ``before``: what the app did when the blob trigger took ``azure.functions.InputStream``: the host read the blob whole
  and the worker handed the function its bytes (here: one ``download_blob().readall()`` in the app's process, which is
  what the worker held), then the handler judged those bytes and copied them to quarantine. The host's own copy of the
  blob (in the .NET process, and on the gRPC channel) came on top and is not measured: there is no host here;
* ``after``: the registered trigger as it is now, given the ``BlobClient`` the blob extension builds
  (``pipelines.run_local.trigger_client``): one ranged read, then a quarantine record by size alone.

Each process resets its peak resident set (``/proc/self/clear_refs``) after start-up and reports VmHWM minus the
resident set it had then, so the figure is the routing's own cost. Prints one line per mode, the record's outcome
and reason, and the target (after < 50 MiB). Run: ``python bench/bench_large_upload.py`` (Linux only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from a fresh clone

MiB = 1024 * 1024
NAME = "uploads/huge.jpg"
CONTAINERS = ("incoming", "accepted", "review", "rejected", "quarantine", "results")
TARGET_MIB = 50


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(mode: str) -> None:
    """Route the blob once in this process (``mode`` before or after) and print the measurement as JSON."""
    from functions import context
    from functions.handler import RoutedBlob, observe, process_blob
    from functions.records import SourceRef
    from pipelines.run_local import load_app, trigger_client, user_function

    route = user_function(load_app(), "route_new_blob")
    ctx = context.current()
    incoming = ctx.config.incoming.container
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS: the peak from here on is the routing's
    base = _status("VmRSS")
    outcomes: list[RoutedBlob] = []
    started = time.perf_counter()
    with observe(outcomes.append):
        if mode == "before":
            blob = ctx.blob_service.get_blob_client(incoming, NAME)
            download = blob.download_blob()
            data = download.readall()  # the InputStream's bytes
            props = download.properties
            process_blob(SourceRef(container=incoming, name=NAME, etag=props.etag, size=props.size,
                                   last_modified=props.last_modified,
                                   content_type=props.content_settings.content_type, uri=blob.url), data, ctx)
            del data
        else:
            route(trigger_client(incoming, NAME))
    seconds = time.perf_counter() - started
    record = outcomes[0].record
    print(json.dumps({"mode": mode, "base": base, "peak": _status("VmHWM"), "seconds": round(seconds, 2),
                      "outcome": record["outcome"], "reason": record["reasons"][0]["code"],
                      "copies": record["destinations"]}))


BLOCK_BYTES = 8 * MiB
"""Staged block size of the bench's upload (any size works; the app's reads do not depend on it)."""


def upload_zeros(blob, size: int) -> None:
    """``size`` zero bytes in 8 MiB blocks: the bench never holds the blob whole."""
    block = bytes(BLOCK_BYTES)
    ids = []
    for i, start in enumerate(range(0, size, len(block))):
        ids.append(f"{i:08d}")
        blob.stage_block(ids[-1], block[:min(len(block), size - start)])
    blob.commit_block_list(ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=500, help="size of the upload in MB (10^6 bytes)")
    parser.add_argument("--child", choices=("before", "after"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0

    from azure.storage.blob import BlobServiceClient

    from devkit.local_services import running_azurite
    from functions import routes

    size = args.megabytes * 1000 * 1000
    with tempfile.TemporaryDirectory(prefix="cvops-bench-large-") as tmp, \
            running_azurite(location=Path(tmp) / "azurite", log_dir=Path(tmp) / "logs", queue=False) as azurite:
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        env = {**os.environ, "CVOPS_STORAGE": azurite.connection_string, "CVOPS_POLICY": "policy.yaml",
               "VISION_PREDICTION_ENDPOINT": "http://127.0.0.1:9/", "VISION_PREDICTION_KEY": "unused",
               "VISION_PROJECT_ID": "00000000-0000-0000-0000-000000000000", "VISION_PUBLISH_NAME": "unused",
               "VISION_MODERATION_ENDPOINT": "", "CVOPS_MODEL": ""}
        results = []
        for mode in ("before", "after"):
            for key in CONTAINERS:  # each mode starts from an empty app (no record of the other's decision)
                env[routes.BY_KEY[key].setting] = f"large-{mode}-{key}"
                service.create_container(f"large-{mode}-{key}")
            started = time.perf_counter()
            upload_zeros(service.get_blob_client(f"large-{mode}-incoming", NAME), size)
            print(f"{mode}: uploaded {size:,} bytes in {time.perf_counter() - started:.1f} s", flush=True)
            answer = subprocess.run([sys.executable, __file__, "--child", mode], env=env, cwd=ROOT,
                                    capture_output=True, text=True, check=False)
            if answer.returncode:
                print(answer.stderr[-4000:], file=sys.stderr)
                return 1
            results.append(json.loads(answer.stdout.strip().splitlines()[-1]))
    print(f"\none upload of {size:,} bytes, peak resident set of the app's process while routing it:")
    for r in results:
        cost = (r["peak"] - r["base"]) / MiB
        print(f"  {r['mode']:<6} {cost:8,.1f} MiB  ({r['seconds']} s; {r['outcome']} {r['reason']}, "
              f"{len(r['copies'])} cop{'y' if len(r['copies']) == 1 else 'ies'})")
    after = (results[-1]["peak"] - results[-1]["base"]) / MiB
    print(f"target: after < {TARGET_MIB} MiB: {'met' if after < TARGET_MIB else 'NOT MET'}")
    return 0 if after < TARGET_MIB else 1


if __name__ == "__main__":
    sys.exit(main())

"""Uploading a training set from Blob: `cvops images upload` against the one-image-per-call loop of the popular scripts.

Starts Azurite and the local Custom Vision service with ``--latency-ms 100`` (every call pays a round trip, as over the
internet), puts N generated scenes in a container laid out one folder per tag, then uploads them twice into two fresh
projects:

* ``cvops images upload`` (in-process, the real command): SAS URLs in batches of 64, concurrent at the tier's rate;
* the loop: download each blob, ``create_images_from_data`` with its bytes, one call per image.

Counted at the HTTP layer (a wrapper around requests' adapter, which both the SDK and azure-storage use): calls to the
Custom Vision service by kind, request bytes sent to it, bytes downloaded from Blob; and wall time. Targets, checked
and printed: image-creation calls = ceil(N/64), no image bytes from the client in URL mode, at least 20x faster than
the loop. Not a timed test: `python bench/bench_upload.py [--n 2000] [--json]` (the loop alone takes N x ~0.1 s).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script from a fresh clone

import requests.adapters
import yaml
from azure.storage.blob import BlobServiceClient
from click.testing import CliRunner

from cvops.clients import training_client
from devkit import scenes
from devkit.local_services import running_azurite, running_local_custom_vision
from pipelines.cli import cli

CREATE_PATHS = ("/images/urls", "/images/files", "/images")


class Meter:
    """Counts every HTTP request made through requests (msrest and azure-core both use it) by host and kind."""

    def __init__(self, cv_host: str, blob_host: str):
        self.cv_host, self.blob_host = cv_host, blob_host
        self.lock = threading.Lock()
        self.reset()
        self._send = requests.adapters.HTTPAdapter.send
        meter = self

        def send(adapter, request, *args, **kwargs):
            response = meter._send(adapter, request, *args, **kwargs)
            meter.record(request, response)
            return response

        requests.adapters.HTTPAdapter.send = send

    def reset(self) -> None:
        with self.lock:
            self.calls: Counter[str] = Counter()
            self.bytes_to_cv = 0
            self.bytes_from_blob = 0

    def record(self, request, response) -> None:
        url = urlsplit(request.url)
        body = request.body or b""
        size = len(body) if isinstance(body, bytes | str) else 0
        with self.lock:
            if url.netloc == self.cv_host:
                kind = "create images" if (request.method == "POST" and url.path.endswith(CREATE_PATHS)) else "other"
                self.calls[kind] += 1
                self.bytes_to_cv += size
            elif url.netloc == self.blob_host and request.method == "GET":
                if "comp=list" in url.query:
                    self.calls["blob list"] += 1
                else:  # a blob's content
                    self.calls["blob"] += 1
                    self.bytes_from_blob += len(response.content or b"")

    def snapshot(self, seconds: float) -> dict:
        with self.lock:
            return {"create_calls": self.calls["create images"], "other_cv_calls": self.calls["other"],
                    "blob_list_calls": self.calls["blob list"], "blob_downloads": self.calls["blob"],
                    "bytes_sent_to_service": self.bytes_to_cv,
                    "bytes_downloaded_from_blob": self.bytes_from_blob, "seconds": round(seconds, 2)}

    def close(self) -> None:
        requests.adapters.HTTPAdapter.send = self._send


def make_dataset(blob: BlobServiceClient, container: str, n: int, seed: int) -> int:
    client = blob.create_container(container)
    per_class = math.ceil(n / len(scenes.CLASSES))
    items = scenes.dataset(scenes.CLASSES, per_class, seed, size=(128, 96))[:n]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda it: client.upload_blob(f"set/{it.labels[0]}/{it.name}", it.data), items))
    return len(items)


def apply_cli_project(env: dict, tmp: Path, container: str) -> Path:
    spec = tmp / "bench.yaml"
    spec.write_text(yaml.safe_dump({
        "project": {"name": "bench-cli", "classification_type": "Multiclass", "domain": "General"},
        "tags": [{"name": c} for c in scenes.CLASSES],
        "data": {"training": {"container": container, "prefix": "set/"}}}))
    assert CliRunner().invoke(cli, ["project", "apply", str(spec)], env=env).exit_code == 0
    return spec


def run_cli(env: dict, spec: Path) -> dict:
    result = CliRunner().invoke(cli, ["images", "upload", "--spec", str(spec), "--json"], env=env)
    if result.exit_code != 0:
        raise SystemExit(f"cvops images upload failed: {result.stderr or result.stdout}")
    return json.loads(result.stdout)


def make_loop_project(service) -> tuple[object, str, dict[str, str]]:
    trainer = training_client(service.endpoint, service.training_key)
    project = trainer.create_project("bench-loop", classification_type="Multiclass")
    return trainer, project.id, {c: trainer.create_tag(project.id, c).id for c in scenes.CLASSES}


def run_loop(trainer, project_id: str, tags: dict[str, str], blob: BlobServiceClient, container: str) -> int:
    """What the community scripts do: for each blob, download it and create one image from its bytes."""
    client = blob.get_container_client(container)
    created = 0
    for item in client.list_blobs(name_starts_with="set/"):
        data = client.download_blob(item.name).readall()
        summary = trainer.create_images_from_data(project_id, data, tag_ids=[tags[item.name.split("/")[1]]])
        created += sum(r.status in ("OK", "OKDuplicate") for r in summary.images)
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images to upload (default 2000)")
    parser.add_argument("--latency-ms", type=int, default=100, help="latency the local service adds to every call")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    import tempfile

    with tempfile.TemporaryDirectory() as tmp, running_azurite() as azurite, \
            running_local_custom_vision(latency_ms=args.latency_ms) as service:
        blob = BlobServiceClient.from_connection_string(azurite.connection_string)
        n = make_dataset(blob, "bench", args.n, seed=11)
        env = {"VISION_TRAINING_ENDPOINT": service.endpoint, "VISION_TRAINING_KEY": service.training_key,
               "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "AZURE_STORAGE_ACCOUNT_URL": "",
               "CVOPS_TIER": "S0", "CVOPS_SPEC": "", "CVOPS_PROJECT": ""}
        meter = Meter(urlsplit(service.endpoint).netloc, urlsplit(azurite.blob_endpoint).netloc)
        try:
            spec = apply_cli_project(env, Path(tmp), "bench")
            loop_project = make_loop_project(service)
            meter.reset()
            started = time.perf_counter()
            report = run_cli(env, spec)
            cli_numbers = {**meter.snapshot(time.perf_counter() - started), "created": report["created"],
                           "image_bytes_sent": report["image_bytes_sent"]}
            meter.reset()
            started = time.perf_counter()
            created = run_loop(*loop_project, blob, "bench")
            loop_numbers = {**meter.snapshot(time.perf_counter() - started), "created": created}
        finally:
            meter.close()

    speedup = loop_numbers["seconds"] / max(cli_numbers["seconds"], 1e-9)
    checks = {
        f"create calls = ceil({n}/64) = {math.ceil(n / 64)}": cli_numbers["create_calls"] == math.ceil(n / 64),
        "no image bytes through the client (URL mode)": cli_numbers["image_bytes_sent"] == 0
                                                       and cli_numbers["blob_downloads"] == 0,
        "every image created by both": cli_numbers["created"] == n and loop_numbers["created"] == n,
        f"at least 20x faster than the loop (got {speedup:.1f}x)": speedup >= 20,
    }
    results = {"n": n, "latency_ms": args.latency_ms, "cvops": cli_numbers, "loop": loop_numbers,
               "speedup": round(speedup, 1), "checks": checks}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{n} images from Azurite, local service with {args.latency_ms} ms latency per call")
        keys = ["create_calls", "other_cv_calls", "blob_list_calls", "blob_downloads", "bytes_sent_to_service",
                "bytes_downloaded_from_blob", "seconds", "created"]
        print(f"{'':28}{'cvops images upload':>22}{'one call per image':>22}")
        for key in keys:
            print(f"{key:28}{cli_numbers[key]:>22}{loop_numbers[key]:>22}")
        print(f"speedup: {speedup:.1f}x")
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

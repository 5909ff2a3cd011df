"""The demo's monitoring stage: images keep arriving from two cameras, one of them new and darker, and `cvops monitor`
flags that camera's slice by name, as a nightly job would, and says where its report is.

What it runs is what an operator's schedule runs: the Function App routes each batch (`cvops function run-local
--once`), and `cvops monitor --by prefix` compares the second batch with the first, read from the result records'
date partitions. The drift is planted by the devkit (:func:`devkit.scenes.camera_shot`): ``camera-b/`` images are
taken at 45 % exposure with another EXIF camera; ``camera-a/`` images are the same kind of scene as before.

Why two batches seconds apart rather than two days: the demo runs in minutes, and a record's time is its blob's
arrival (Last-Modified, whole seconds), so the baseline is the first batch's window and the monitored window starts at
the next whole second after it. Why its own rules (:data:`DEMO_RULES`): the defaults want 200 images in a
slice-period before a PSI counts, and at two dozen images a slice chance alone moves PSI by a few tenths and the review
share by a few images, so the demo asks for 20 images, PSI above 1, and a review share 25 points up. A camera at half
the light moves its luminance PSI far past that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from azure.storage.blob import BlobServiceClient

from cvops.errors import CvopsError
from devkit import scenes
from devkit.local_services import REPO_ROOT
from functions import routes
from functions.naming import printable

Cvops = Callable[..., Any]

STEADY, DRIFTING = "camera-a/", "camera-b/"
CAMERAS: dict[str, tuple[str, str, float]] = {
    STEADY: ("Contoso", "Cam-1", 1.0),
    DRIFTING: ("Fabrikam", "NightOwl 2", 0.45),
}
"""Slice prefix: (EXIF make, model, exposure). The drifting camera's images get 45 % of the light."""
DEMO_RULES = {"min_images": 20, "psi_above": 1.0, "review_share_increase": 0.25}
"""`cvops monitor --rules` at the demo's scale (see the module docstring for why each differs from the defaults)."""
EXIT_RULE_CROSSED = 1


def camera_batch(prefix: str, classes: Sequence[str], per_slice: int, seed: int) -> list[tuple[str, bytes]]:
    """``per_slice`` scenes (classes in turn) as the slice's camera takes them, named ``<prefix><class>_<seed>_<i>.jpg``."""
    make, model, exposure = CAMERAS[prefix]
    return [(f"{prefix}{classes[i % len(classes)]}_{seed}_{i:03d}.jpg",
             scenes.camera_shot(classes[i % len(classes)], seed * 1000 + i, make=make, model=model, exposure=exposure))
            for i in range(per_slice)]


def _next_second(after: datetime) -> datetime:
    """The first whole second after ``after`` plus one: blob times have whole seconds, so nothing uploaded before
    ``after`` can carry this time or a later one."""
    return after.replace(microsecond=0) + timedelta(seconds=2)


def run_monitor_stage(cvops: Cvops, env: Mapping[str, str], blob_service: BlobServiceClient, reports: Path, *,
                      classes: Sequence[str], per_slice: int = 24, seed: int = 7) -> dict[str, Any]:
    """Route a baseline batch from the steady camera, then a batch from both cameras, then run `cvops monitor` over
    them. ``cvops`` runs a command that must succeed (the demo's runner); `cvops monitor` itself is run here, since
    its exit 1 (a rule crossed) is the expected answer. Returns the findings, the slices flagged, the report's path,
    and ``problems`` (the drifting slice not flagged, or the steady one flagged: the demo fails on those)."""
    incoming = blob_service.get_container_client(env.get(routes.INCOMING.setting) or routes.INCOMING.default)
    started = datetime.now(UTC).replace(microsecond=0)

    def arrive(batch: list[tuple[str, bytes]], stage: str) -> None:
        for name, data in batch:
            incoming.upload_blob(name, data, overwrite=True)
        cvops(stage, "function", "run-local", "--once")

    baseline = camera_batch(STEADY, classes, per_slice, seed)
    print(f"  baseline: {len(baseline)} images from {STEADY} ({' '.join(CAMERAS[STEADY][:2])})")
    arrive(baseline, "route (monitor baseline)")
    split = _next_second(datetime.now(UTC))
    time.sleep(max(0.0, (split - datetime.now(UTC)).total_seconds()))
    now = camera_batch(STEADY, classes, per_slice, seed + 1) + camera_batch(DRIFTING, classes, per_slice, seed + 2)
    print(f"  then: {per_slice} more from {STEADY} and {per_slice} from a new camera, {DRIFTING} "
          f"({' '.join(CAMERAS[DRIFTING][:2])}, darker)")
    arrive(now, "route (monitor window)")
    until = datetime.now(UTC) + timedelta(minutes=1)

    reports.mkdir(parents=True, exist_ok=True)
    rules = reports / "monitor-rules.yaml"
    rules.write_text(yaml.safe_dump(DEMO_RULES, sort_keys=False), encoding="utf-8")
    result = run_monitor(env, ["--since", split.isoformat(), "--until", until.isoformat(), "--baseline",
                               f"{started.isoformat()}..{split.isoformat()}", "--every", "day", "--by", "prefix",
                               "--rules", str(rules), "--report", str(reports / "monitor")])
    findings = result["data"]["findings"]
    flagged = sorted({f["slice"] for f in findings})
    problems = []
    if DRIFTING not in flagged:
        problems.append(f"monitor: the darker camera's slice {DRIFTING} was not flagged (findings: {flagged})")
    if STEADY in flagged:
        problems.append(f"monitor: the steady camera's slice {STEADY} was flagged: "
                        + "; ".join(f["message"] for f in findings if f["slice"] == STEADY))
    return {"exit_code": result["exit_code"], "findings": findings, "flagged": flagged, "rules": DEMO_RULES,
            "records": result["data"]["records"], "baseline_images": result["data"]["baseline"]["images"],
            "report": (result["data"].get("reports") or {}).get("html"), "problems": problems}


def run_monitor(env: Mapping[str, str], args: list[str]) -> dict[str, Any]:
    """`cvops monitor ... --json` as a child process, as cron or CI runs it: exit 0 (nothing crossed) or 1 (a rule
    crossed) with its JSON document; any other exit stops the demo with the command's own last line."""
    shown = "cvops monitor " + " ".join(_short(a) for a in args)
    print(f"\n$ {shown}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "pipelines", "monitor", *args, "--json"], env=dict(env),
                          cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, EXIT_RULE_CROSSED):
        lines = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
        raise CvopsError(f"demo stage 'monitor' failed: {lines[-1] if lines else f'exit code {proc.returncode}'}",
                         hint=f"run it yourself to see more: {shown}")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise CvopsError(f"demo stage 'monitor' printed no JSON document ({e})") from None
    return {"exit_code": proc.returncode, "data": data}


def _short(arg: str) -> str:
    try:
        return str(Path(arg).resolve().relative_to(REPO_ROOT)) if "/" in arg and Path(arg).exists() else arg
    except ValueError:
        return arg


def print_monitor(summary: Mapping[str, Any]) -> None:
    """What the monitor said, and where its report is."""
    print(f"\nMonitor: {summary['records']} records against a baseline of {summary['baseline_images']} "
          f"(rules {summary['rules']}): exit {summary['exit_code']}, flagged {', '.join(summary['flagged']) or 'nothing'}")
    for finding in summary["findings"]:
        print(f"  {finding['rule']}: {printable(finding['message'])}")
    if summary.get("report"):
        print(f"  report: {summary['report']}")

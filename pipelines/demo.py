"""`make demo`: the whole cvops flow on one machine, on Azurite and the local Custom Vision service.

What it shows is what an operator runs against Azure: the same `cvops` commands, as child processes, configured only by
the environment variables Microsoft's quickstarts use. Only the endpoints differ. Each stage prints what it ran; a stage
that fails stops the demo with its message and a non-zero exit, and both services are stopped whatever happens.

State: every run starts from a clean `.local/demo/` (the services' data, the sample images, the reports and the logs),
so a second run shows the same story; the virtual environment and `node_modules` are what a second run reuses. The run
proves convergence on its own: it runs `images upload` twice and shows that the second uploads nothing.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient

from cvops import scenes
from cvops.errors import CvopsError
from cvops.local_services import REPO_ROOT, running_azurite, running_local_custom_vision

CLASSES = ("beach", "forest", "mountain", "city")
MULTI_LABEL_SETS = (("beach",), ("forest",), ("mountain",), ("city",), ("beach", "forest"), ("city", "mountain"),
                    ("forest", "mountain"))
SCENES_SPEC = REPO_ROOT / "examples" / "scenes" / "project.yaml"
MULTILABEL_SPEC = REPO_ROOT / "examples" / "multilabel" / "project.yaml"


@dataclass
class DemoSize:
    """How many images each set gets. The defaults keep a 2-core machine under a minute of training."""

    train_per_class: int = 40
    holdout_per_class: int = 15
    incoming_per_class: int = 6
    multilabel_train_per_set: int = 12
    multilabel_holdout_per_set: int = 5


@dataclass
class Demo:
    root: Path
    size: DemoSize
    env: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    # -- running commands -------------------------------------------------------------------------------------------
    def cvops(self, stage: str, *args: str, json_out: bool = True) -> Any:
        """Run one `cvops` command as an operator would; stop the demo with its message when it fails."""
        cmd = [sys.executable, "-m", "pipelines", *args]
        if json_out:
            cmd.append("--json")
        shown = " ".join(["cvops", *[_shorten(a) for a in args]])
        print(f"\n$ {shown}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(cmd, env=self.env, cwd=REPO_ROOT, capture_output=True, text=True)
        self.timings[stage] = self.timings.get(stage, 0.0) + time.monotonic() - started
        if proc.returncode != 0:
            message = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit code {proc.returncode}"
            raise CvopsError(f"demo stage '{stage}' failed: {message}", hint=f"run it yourself to see more: {shown}")
        if not json_out:
            print(proc.stdout.rstrip())
            return None
        try:
            result = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise CvopsError(f"demo stage '{stage}' printed no JSON document ({e})") from None
        return result


def _shorten(arg: str) -> str:
    try:
        return str(Path(arg).resolve().relative_to(REPO_ROOT)) if ("/" in arg and Path(arg).exists()) else arg
    except ValueError:
        return arg


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -- sample data --------------------------------------------------------------------------------------------------------
def upload_sample_data(blob_service: BlobServiceClient, size: DemoSize, seed: int) -> dict[str, int]:
    """Seeded scenes into Blob: training and holdout one folder per tag, a multi-label manifest set, and incoming images
    with a few bad files among them. Returns how many of each went where."""
    for name in ("training", "holdout", "incoming"):
        blob_service.get_container_client(name).create_container()
    counts: dict[str, int] = {}

    def put(container: str, prefix: str, items: list[scenes.SceneImage], *, by_tag: bool) -> None:
        client = blob_service.get_container_client(container)
        for item in items:
            path = f"{prefix}{item.labels[0]}/{item.name}" if by_tag else f"{prefix}{item.name}"
            client.upload_blob(path, item.data, overwrite=True)
        counts[f"{container}/{prefix}"] = counts.get(f"{container}/{prefix}", 0) + len(items)

    put("training", "scenes/", scenes.dataset(CLASSES, size.train_per_class, seed), by_tag=True)
    put("holdout", "scenes/", scenes.dataset(CLASSES, size.holdout_per_class, seed + 1), by_tag=True)

    for container, per_set, set_seed in (("training", size.multilabel_train_per_set, seed + 2),
                                          ("holdout", size.multilabel_holdout_per_set, seed + 3)):
        items = scenes.dataset(MULTI_LABEL_SETS, per_set, set_seed)
        put(container, "multilabel/", items, by_tag=False)
        manifest = io.StringIO()
        writer = csv.writer(manifest, lineterminator="\n")
        writer.writerow(["path", "tags"])
        for item in items:
            writer.writerow([item.name, ";".join(item.labels)])
        blob_service.get_blob_client(container, "multilabel/labels.csv").upload_blob(manifest.getvalue(), overwrite=True)
    return counts


def incoming_images(size: DemoSize, seed: int) -> list[tuple[str, bytes, str]]:
    """(blob name, bytes, what it is) for the incoming container: good scenes of each class, then the bad files."""
    items = [(f"{item.name}", item.data, item.labels[0]) for item in scenes.dataset(CLASSES, size.incoming_per_class, seed + 4)]
    items += [
        ("bad/truncated.jpg", scenes.truncated_jpeg(seed), "bad: truncated JPEG"),
        ("bad/notes.jpg", scenes.text_file(), "bad: not an image"),
        ("bad/huge.png", scenes.oversized_png(seed=seed), "bad: too large"),
    ]
    return items


# -- the flow -----------------------------------------------------------------------------------------------------------
def run(root: Path, size: DemoSize, seed: int) -> dict[str, Any]:
    if root.exists():
        shutil.rmtree(root)
    (root / "logs").mkdir(parents=True)
    reports = root / "reports"
    demo = Demo(root=root, size=size)
    started = time.monotonic()

    with running_azurite(location=root / "azurite", log_dir=root / "logs") as azurite, \
            running_local_custom_vision(data_dir=root / "customvision", log_dir=root / "logs") as cv:
        print(f"Azurite (Blob Storage)      {azurite.blob_endpoint}")
        print(f"Local Custom Vision service {cv.endpoint}")
        demo.env = {
            **os.environ,
            "VISION_TRAINING_ENDPOINT": cv.endpoint,
            "VISION_TRAINING_KEY": cv.training_key,
            "VISION_PREDICTION_ENDPOINT": cv.endpoint,
            "VISION_PREDICTION_KEY": cv.prediction_key,
            "VISION_PREDICTION_RESOURCE_ID": cv.prediction_resource_id,
            "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "NO_COLOR": "1",
        }
        blob_service = BlobServiceClient.from_connection_string(azurite.connection_string)

        print("\n== 1. Sample data: seeded scenes into Blob Storage")
        t = time.monotonic()
        counts = upload_sample_data(blob_service, size, seed)
        demo.timings["sample data"] = time.monotonic() - t
        for where, n in counts.items():
            print(f"  {n:4d} images in {where}")

        print("\n== 2. A Multiclass project from examples/scenes/project.yaml")
        spec = str(SCENES_SPEC)
        demo.outputs["apply"] = demo.cvops("project apply", "project", "apply", spec)
        demo.outputs["lint"] = demo.cvops("images lint", "images", "lint", "--spec", spec)
        demo.outputs["upload"] = demo.cvops("images upload", "images", "upload", "--spec", spec)
        demo.outputs["upload again"] = demo.cvops("images upload (rerun)", "images", "upload", "--spec", spec)
        demo.outputs["train"] = demo.cvops("train", "train", "--wait", "--spec", spec)
        demo.outputs["evaluate"] = demo.cvops("evaluate", "evaluate", "--spec", spec, "--report", str(reports / "scenes"))
        demo.outputs["publish"] = demo.cvops("publish", "publish", "--spec", spec)
        demo.outputs["status"] = demo.cvops("status", "status", "--spec", spec)

        print("\n== 3. A Multilabel project from a manifest (examples/multilabel/project.yaml)")
        ml = str(MULTILABEL_SPEC)
        demo.outputs["ml apply"] = demo.cvops("project apply", "project", "apply", ml)
        demo.outputs["ml upload"] = demo.cvops("images upload", "images", "upload", "--spec", ml)
        demo.outputs["ml train"] = demo.cvops("train", "train", "--wait", "--spec", ml)
        demo.outputs["ml evaluate"] = demo.cvops("evaluate", "evaluate", "--spec", ml, "--report",
                                                 str(reports / "multilabel"))
        demo.outputs["ml publish"] = demo.cvops("publish", "publish", "--spec", ml)

        print("\n== 4. New images arrive in 'incoming'; the Function App routes them (cvops function run-local)")
        incoming = incoming_images(size, seed)
        client = blob_service.get_container_client("incoming")
        for name, data, _ in incoming:
            client.upload_blob(name, data, overwrite=True)
        print(f"  {len(incoming)} images uploaded to incoming/ ({sum(1 for i in incoming if i[2].startswith('bad'))} bad files)")
        project_id = _project_id(demo.outputs["status"])
        demo.env.update({
            "CVOPS_STORAGE": azurite.connection_string,
            "VISION_PROJECT_ID": project_id,
            "VISION_PUBLISH_NAME": _publish_name(demo.outputs["publish"]),
        })
        demo.outputs["route"] = demo.cvops("route", "function", "run-local", "--until-idle")
        summary = summarize(demo, blob_service, incoming, reports)
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    return summary


def _project_id(status: dict[str, Any]) -> str:
    project = status.get("project") or {}
    project_id = project.get("id") if isinstance(project, dict) else None
    if not project_id:
        raise CvopsError("cvops status --json gave no project id", hint="see the status stage's output")
    return str(project_id)


def _publish_name(publish: dict[str, Any]) -> str:
    name = publish.get("publish_name") or publish.get("name") or publish.get("publishName")
    if not name:
        raise CvopsError("cvops publish --json gave no publish name", hint="see the publish stage's output")
    return str(name)


def read_results(blob_service: BlobServiceClient) -> list[dict[str, Any]]:
    """Every result record in the results container's date-partitioned JSON Lines."""
    records: list[dict[str, Any]] = []
    container = blob_service.get_container_client("results")
    for blob in container.list_blobs():
        if blob.name.endswith(".jsonl"):
            text = container.download_blob(blob.name).readall().decode()
            records += [json.loads(line) for line in text.splitlines() if line.strip()]
    return records


def summarize(demo: Demo, blob_service: BlobServiceClient, incoming: list[tuple[str, bytes, str]],
              reports: Path) -> dict[str, Any]:
    records = read_results(blob_service)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_name.setdefault(record.get("blob", {}).get("name") or record.get("blob_name", ""), []).append(record)
    outcomes: Counter = Counter()
    tags: Counter = Counter()
    problems: list[str] = []
    quarantined: list[tuple[str, str]] = []
    for name, _, what in incoming:
        found = by_name.get(name, [])
        if len(found) != 1:
            problems.append(f"{name}: {len(found)} result records (expected exactly 1)")
            continue
        decision = found[0].get("decision", {})
        outcome = decision.get("outcome") if isinstance(decision, dict) else decision
        outcomes[outcome] += 1
        for tag in (decision.get("tags") or []) if isinstance(decision, dict) else []:
            tags[tag] += 1
        if what.startswith("bad"):
            if outcome != "quarantine":
                problems.append(f"{name} ({what}) was routed to {outcome}, not quarantine")
            reasons = decision.get("reasons") if isinstance(decision, dict) else None
            quarantined.append((name, "; ".join(map(str, reasons or []))))
    summary = {
        "metrics": demo.outputs.get("evaluate"),
        "outcomes": dict(outcomes),
        "tags": dict(tags),
        "quarantined": quarantined,
        "problems": problems,
        "report": str(reports / "scenes" / "evaluation.html"),
        "results": "results container (JSON per decision + results/<date>/*.jsonl)",
        "timings": {k: round(v, 1) for k, v in demo.timings.items()},
    }
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    print("\n== Summary")
    print(json.dumps(summary, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT / ".local" / "demo", help="Where the demo keeps its state.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--small", action="store_true", help="Fewer images (for a quick check).")
    args = parser.parse_args(argv)
    size = DemoSize(train_per_class=20, holdout_per_class=8, incoming_per_class=3, multilabel_train_per_set=8,
                    multilabel_holdout_per_set=3) if args.small else DemoSize()
    try:
        summary = run(args.root, size, args.seed)
    except CvopsError as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        return 1
    print_summary(summary)
    if summary["problems"]:
        print("\ndemo failed: the routing summary does not add up: " + "; ".join(summary["problems"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

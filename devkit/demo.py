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

import yaml
from azure.storage.blob import BlobServiceClient
from PIL import Image

from cvops.errors import CvopsError
from devkit import scenes
from devkit.demo_export import print_export, run_export_comparison, the_record
from devkit.demo_moderation import print_moderation, run_moderation_stage
from devkit.demo_monitor import print_monitor, run_monitor_stage
from devkit.demo_review import print_review, run_review_loop
from devkit.demo_transition import print_transition, run_transition
from devkit.local_services import REPO_ROOT, running_azurite, running_local_custom_vision
from functions import routes

CLASSES = ("beach", "forest", "mountain", "city")
MULTI_LABEL_SETS = (("beach",), ("forest",), ("mountain",), ("city",), ("beach", "forest"), ("city", "mountain"),
                    ("forest", "mountain"))
# What infra/ creates in Azure: the training sets' containers and every container the Function App reads or writes.
DEMO_CONTAINERS = ("training", "holdout", *(route.default for route in routes.ROUTES))
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

    # -- running commands -------------------------------------------------------------------------------------------
    def cvops(self, stage: str, *args: str, json_out: bool = False) -> Any:
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
    for name in DEMO_CONTAINERS:
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


def pixel_bomb_png(side: int = 12_000) -> bytes:
    """A PNG of a few kilobytes that declares side x side pixels: more than any service should decode (too large)."""
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def incoming_images(size: DemoSize, seed: int) -> list[tuple[str, bytes, str]]:
    """(blob name, bytes, what it is) for the incoming container: good scenes of each class, an image over the 4 MB
    prediction limit that the function can shrink, then the bad files that nothing can fix."""
    items = [(f"{item.name}", item.data, item.labels[0]) for item in scenes.dataset(CLASSES, size.incoming_per_class, seed + 4)]
    # Two things at once in one photo: a Multiclass model must pick one, and is often unsure: the review band's job.
    items += [(f"ambiguous/{'+'.join(item.labels)}_{i}.jpg", item.data, "ambiguous: " + " + ".join(item.labels))
              for i, item in enumerate(scenes.dataset((("beach", "forest"),), 5, seed + 5))]
    items += [
        ("large/over-4mb.png", scenes.oversized_png(seed=seed), "over 4 MB: shrunk, then classified"),
        ("bad/truncated.jpg", scenes.truncated_jpeg(seed), "bad: truncated JPEG"),
        ("bad/notes.jpg", scenes.text_file(), "bad: not an image"),
        ("bad/huge.png", pixel_bomb_png(), "bad: too large (144 megapixels)"),
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
        demo.cvops("project apply", "project", "apply", spec)
        demo.cvops("images lint", "images", "lint", "--spec", spec)
        demo.cvops("images upload", "images", "upload", "--spec", spec)
        print("  (the same upload again: a rerun converges and sends nothing twice)")
        demo.cvops("images upload (rerun)", "images", "upload", "--spec", spec)
        demo.cvops("train", "train", "--wait", "--spec", spec)
        demo.cvops("evaluate", "evaluate", "--spec", spec, "--report", str(reports / "scenes"))
        demo.cvops("publish", "publish", "--spec", spec)
        status = demo.cvops("status", "status", "--spec", spec, json_out=True)

        print("\n== 3. A Multilabel project from a manifest (examples/multilabel/project.yaml)")
        ml = str(MULTILABEL_SPEC)
        demo.cvops("project apply", "project", "apply", ml)
        demo.cvops("images upload", "images", "upload", "--spec", ml)
        demo.cvops("train", "train", "--wait", "--spec", ml)
        demo.cvops("evaluate", "evaluate", "--spec", ml, "--report", str(reports / "multilabel"))
        demo.cvops("publish", "publish", "--spec", ml)

        print("\n== 4. New images arrive in 'incoming'; the Function App routes them (cvops function run-local)")
        incoming = incoming_images(size, seed)
        client = blob_service.get_container_client("incoming")
        for name, data, _ in incoming:
            client.upload_blob(name, data, overwrite=True)
        print(f"  {len(incoming)} images uploaded to incoming/ ({sum(1 for i in incoming if i[2].startswith('bad'))} bad files)")
        policy_file = root / "policy.yaml"
        policy = routing_policy(demo, SCENES_SPEC, reports / "scenes" / "evaluation.json", policy_file)
        demo.env.update({
            "CVOPS_POLICY": str(policy_file),
            "CVOPS_STORAGE": azurite.connection_string,
            "VISION_PROJECT_ID": _project_id(status),
            "VISION_PUBLISH_NAME": str(yaml.safe_load(SCENES_SPEC.read_text())["publish"]["name"]),
        })
        demo.cvops("route", "function", "run-local", "--once")
        summary = summarize(demo, blob_service, incoming, reports)
        summary["policy"] = policy

        print("\n== 5. Before Custom Vision retires: export the scenes model (ONNX) and route the same images with it")
        model_run = Demo(root=root, size=size, env=dict(demo.env), timings=demo.timings)
        summary["export"] = run_export_comparison(demo.cvops, model_run.cvops, model_run.env, blob_service, root,
                                                  SCENES_SPEC, incoming, demo.timings)
        summary["problems"] += summary["export"]["problems"]

        print("\n== 6. Review: a person decides the unsure images in the page; the decisions go back into training")
        summary["review"] = run_review_loop(demo.cvops, demo.env, root, SCENES_SPEC, incoming, CLASSES, reports)

        print("\n== 7. Moderation: uploads judged by a banned-symbol classifier and moderation with policy.yaml's bands")
        uploads_run = Demo(root=root, size=size, env=dict(demo.env), timings=demo.timings)
        summary["moderation"] = run_moderation_stage(uploads_run.cvops, uploads_run.env, blob_service, root, seed)
        summary["problems"] += summary["moderation"]["problems"]
        print("\n== 8. Leave Custom Vision: back up scenes, restore it as a second project, train, compare; AutoML export")
        summary["transition"] = run_transition(demo.cvops, root, SCENES_SPEC, "scenes")
        print("\n== 9. Monitoring: images keep arriving, some from a new and darker camera; cvops monitor flags it")
        summary["monitor"] = run_monitor_stage(demo.cvops, demo.env, blob_service, reports, classes=CLASSES, seed=seed)
        summary["problems"] += summary["monitor"]["problems"]
        summary["timings"] = {k: round(v, 1) for k, v in demo.timings.items()}
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    summary["azurite_data"] = str(root / "azurite")  # where --root put it, not where the default would
    return summary


# How the demo's routing policy is suggested, besides the spec's target precision: a wide review band under each threshold.
ROUTING_OPTIONS = ("--review-band", "0.25", "--no-tag-passes", "review")


def routing_policy(demo: Demo, spec_path: Path, evaluation: Path, out: Path) -> dict[str, Any]:
    """The Function App's routing policy, as an operator derives it: `cvops policy suggest` from the holdout
    evaluation, per tag the threshold for the spec's target precision (its best precision where the target is not met,
    said in the file), a review band under each, and "no tag passes" to review. Writes ``out`` (what CVOPS_POLICY names)
    and returns the policy's data."""
    suggested = demo.cvops("policy suggest", "policy", "suggest", "--spec", str(spec_path), "--evaluation",
                           str(evaluation), *ROUTING_OPTIONS, "--out", str(out), json_out=True)
    for tag in suggested["tags"]:
        verdict = "met" if tag["met"] else f"NOT met: {tag['reason']}"
        print(f"  {tag['tag']:<10} threshold {tag['threshold']:<6g} review band {tag['review_band']:<5g} {verdict}")
    print(f"  wrote {_shorten(str(out))} (the numbers behind each threshold are comments in it)")
    return suggested["policy"]


def _project_id(status: dict[str, Any]) -> str:
    project = status.get("project") or {}
    project_id = project.get("id") if isinstance(project, dict) else None
    if not project_id:
        raise CvopsError("cvops status --json gave no project id", hint="see the status stage's output")
    return str(project_id)


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
        by_name.setdefault(record["blob"]["name"], []).append(record)
    outcomes: Counter = Counter()
    tags: Counter = Counter()
    problems: list[str] = []
    quarantined: list[tuple[str, str]] = []
    notable: list[tuple[str, str, str, str]] = []
    for name, _, what in incoming:
        record = the_record(by_name, name, problems)
        if record is None:
            continue
        outcomes[record["outcome"]] += 1
        tags.update(record["tags"])
        reasons = "; ".join(r.get("message", "") for r in record["reasons"])
        if what.startswith("bad"):
            if record["outcome"] != "quarantine":
                problems.append(f"{name} ({what}) was routed to {record['outcome']}, not quarantine")
            quarantined.append((name, reasons))
        elif record["outcome"] == "quarantine":
            problems.append(f"{name} ({what}) was quarantined: {reasons}")
        else:
            if what not in CLASSES:
                top = sorted(record.get("predictions") or [], key=lambda p: -p.get("probability", 0))[:2]
                notable.append((name, what, record["outcome"], ", ".join(
                    f"{p['tag']} {p['probability']:.2f}" for p in top)))
    evaluations = {name: json.loads((reports / name / "evaluation.json").read_text()) for name in ("scenes", "multilabel")}
    return {
        "evaluations": evaluations,
        "outcomes": dict(outcomes),
        "tags": dict(tags),
        "incoming": len(incoming),
        "quarantined": quarantined,
        "notable": notable,
        "problems": problems,
        "reports": {name: str(reports / name / "evaluation.html") for name in evaluations},
        "timings": {k: round(v, 1) for k, v in demo.timings.items()},
    }


def print_summary(summary: dict[str, Any]) -> None:
    """The few numbers an operator looks at: model quality, chosen thresholds, where every image went, where to look."""
    print("\n== Summary")
    for name, ev in summary["evaluations"].items():
        print(f"\n{name}: holdout of {ev['n_images']} images, mAP {ev['mean_average_precision']:.3f}, "
              f"precision {ev['micro_precision']:.3f}, recall {ev['micro_recall']:.3f}"
              + (f", accuracy {ev['accuracy']:.3f}" if ev.get("accuracy") is not None else ""))
        sweep = ev.get("threshold_sweep") or {}
        print(f"  {'tag':<10} {'threshold':>9} {'precision':>9} {'recall':>7} {'AP':>6}   recommended threshold")
        for tag in ev["tags"]:
            rec = sweep.get(tag["tag"], {})
            advice = (f"{rec['recommended_threshold']:.2f} ({rec['reason']})" if rec.get("recommended_threshold") is not None
                      else rec.get("reason", ""))
            print(f"  {tag['tag']:<10} {tag['threshold']:>9.2f} {tag['precision']:>9.3f} {tag['recall']:>7.3f} "
                  f"{tag['average_precision']:>6.3f}   {advice}")
    outcomes = summary["outcomes"]
    policy = summary["policy"]
    print(f"\nRouting policy {policy['version']}: thresholds "
          + ", ".join(f"{tag} {rule['threshold']:.2f}" for tag, rule in policy["tags"].items())
          + f", review band {policy['review_band']}, no tag passes: {policy['no_tag_passes']}")
    print(f"Routing: {summary['incoming']} incoming images, "
          + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
          + f" ({sum(outcomes.values())} outcomes in all)")
    print("  accepted per tag: " + ", ".join(f"{tag} {n}" for tag, n in sorted(summary["tags"].items())))
    for name, what, outcome, top in summary["notable"]:
        print(f"  {outcome:<10}  {name} ({what}): {top}")
    for name, reason in summary["quarantined"]:
        print(f"  quarantine  {name}: {reason}")
    if summary.get("export") is not None:
        print_export(summary["export"])
    if summary.get("review") is not None:
        print_review(summary["review"])
    if summary.get("moderation") is not None:
        print_moderation(summary["moderation"])
    if summary.get("transition") is not None:
        print_transition(summary["transition"])
    if summary.get("monitor") is not None:
        print_monitor(summary["monitor"])
    print("\nReports:  " + "  ".join(summary["reports"].values()))
    print("Results:  containers accepted/, review/, rejected/, quarantine/ (copies + JSON beside each) and "
          f"results/date=<day>/*.jsonl in Azurite's data under {summary['azurite_data']}")
    print("Timings:  " + ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in summary["timings"].items())
          + f"; total {summary['wall_seconds']:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.demo", description=__doc__.splitlines()[0])
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

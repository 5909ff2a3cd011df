"""The demo's moderation stage: user uploads on a social platform, judged by the platform's own classifier and by
moderation with the seed policy's bands.

What it runs is what an operator runs: `cvops project apply`, `images upload`, `train --wait`, `evaluate` and
`publish` for the ``uploads`` project (examples/uploads/project.yaml: a Multiclass classifier with a ``banned-symbol``
tag, trained on images the dev kit renders), then `cvops policy suggest --moderation-from policy.yaml` (thresholds from
the holdout, moderation bands copied from the seed policy), then the Function App over a few dozen uploads (`cvops
function run-local --once`) with moderation on: the local service's stand-in for Computer Vision 3.2 Adult
(``emulator/moderation_detector.py``; colour measures, not a moderation model) at the same endpoint, as one
multi-service Azure AI resource serves both.

Why its own containers (``incoming-uploads``, ``review-uploads``...): the scenes stages' records and review queue stay
as they were, and this run proves on its own that every upload got exactly one record.

The summary says how many uploads were blocked, sent to review and accepted, and for each moderation decision which
score crossed which band (the record's reason).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from azure.storage.blob import BlobServiceClient

from devkit import scenes
from devkit.demo_export import read_records, the_record
from devkit.local_services import REPO_ROOT
from devkit.moderation_scenes import banned_symbol
from devkit.moderation_scenes import generate as moderation_image
from functions import routes

UPLOADS_SPEC = REPO_ROOT / "examples" / "uploads" / "project.yaml"
SEED_POLICY = REPO_ROOT / "policy.yaml"
SUFFIX = "-uploads"
"""This stage's containers: each of the app's containers with this suffix."""
SYMBOL, CLEAN = "banned-symbol", "clean"
MODERATION_CODES = ("moderation_reject", "moderation_review")

Cvops = Callable[..., Any]
Upload = tuple[str, bytes, str]
"""(blob name, bytes, what the dev kit drew)."""


def training_images(per_tag: int, seed: int) -> list[tuple[str, str, bytes]]:
    """(tag, file name, bytes): scenes of every class with the symbol painted on, and clean scenes."""
    items = []
    for i in range(per_tag):
        label = scenes.CLASSES[i % len(scenes.CLASSES)]
        items.append((SYMBOL, f"symbol_{label}_{seed}_{i}.jpg", banned_symbol(label, seed * 1000 + i)))
        items.append((CLEAN, f"clean_{label}_{seed}_{i}.jpg", scenes.generate(label, seed * 1000 + i, size=(320, 240))))
    return items


def uploads(seed: int, *, clean: int = 6, symbols: int = 4, per_band: int = 2) -> list[Upload]:
    """The incoming uploads: clean scenes, scenes with the banned symbol, and per moderation band (review, reject) of
    each kind (adult, gore) images the stand-in puts in that band (devkit.moderation_scenes)."""
    items: list[Upload] = []
    for i in range(clean):
        label = scenes.CLASSES[i % len(scenes.CLASSES)]
        items.append((f"photos/{label}_{i}.jpg", scenes.generate(label, seed * 7919 + i, size=(320, 240)), "clean"))
    for i in range(symbols):
        label = scenes.CLASSES[i % len(scenes.CLASSES)]
        items.append((f"photos/symbol_{label}_{i}.jpg", banned_symbol(label, seed * 7919 + 100 + i), "banned symbol"))
    for kind in ("adult", "gore"):
        for band in ("review", "reject"):
            for i in range(per_band):
                items.append((f"photos/{kind}_{band}_{i}.jpg", moderation_image(kind, band, seed=seed + i),
                              f"{kind} {band}"))
    return items


def container_settings() -> dict[str, str]:
    """The app's container settings pointing at this stage's containers."""
    return {route.setting: route.default + SUFFIX for route in (routes.INCOMING, *routes.OUTPUTS)}


def moderation_reasons(record: Mapping[str, Any]) -> list[str]:
    """The record's moderation reasons as printed: ``adult score 0.952 is above 0.7``."""
    return [r["message"] for r in record.get("reasons", []) if r.get("code") in MODERATION_CODES]


def tally(records: Mapping[str, list[dict[str, Any]]], items: Sequence[Upload]) -> dict[str, Any]:
    """Blocked, sent to review (and why) and accepted, over the uploads; an upload without exactly one record, or one
    the dev kit drew for a moderation band that did not land there, is a problem (the demo fails on those). Pure."""
    outcomes: Counter = Counter()
    accepted_tags: Counter = Counter()
    why: dict[str, Counter] = {"rejected": Counter(), "review": Counter()}
    lines: list[tuple[str, str, str, str]] = []
    problems: list[str] = []
    for name, _, what in items:
        record = the_record(records, name, problems)
        if record is None:
            continue
        outcome = record["outcome"]
        outcomes[outcome] += 1
        if outcome == "accepted":
            accepted_tags.update(record.get("tags", []))
        reasons = moderation_reasons(record)
        if outcome in why:
            # The band that decided: a blocked image's reject bands (it may sit in a review band too), else review's.
            code = "moderation_reject" if outcome == "rejected" else "moderation_review"
            fired = [r["tag"] for r in record.get("reasons", []) if r.get("code") == code]
            if fired:
                for band in fired:
                    why[outcome][f"{band} ({code.removeprefix('moderation_')} band)"] += 1
            else:
                why[outcome]["classifier unsure" if outcome == "review" else "classifier: no tag passes"] += 1
        shown = "; ".join(reasons) or "; ".join(r.get("message", "") for r in record.get("reasons", []))
        lines.append((outcome, name, what, shown))
        expected = {"reject": "rejected", "review": "review"}.get(what.split(" ")[-1])
        if what.split(" ")[0] in ("adult", "gore") and expected and outcome != expected:
            problems.append(f"{name} ({what}) was routed to {outcome}, not {expected}")
    return {"uploads": len(items), "outcomes": dict(outcomes), "accepted_tags": dict(accepted_tags),
            "why": {k: dict(v) for k, v in why.items()}, "lines": lines, "problems": problems}


def run_moderation_stage(cvops: Cvops, env: dict[str, str], blob_service: BlobServiceClient, root: Path, seed: int,
                         *, train_per_tag: int = 16, holdout_per_tag: int = 6) -> dict[str, Any]:
    """Train and publish the uploads classifier, suggest its policy with the seed's moderation bands, route the uploads
    with moderation on, and count. ``cvops`` runs one `cvops` command with ``env`` (which this function fills in with
    the stage's settings); ``env`` must already name the local services (the demo's other stages set it)."""
    spec = str(UPLOADS_SPEC)
    data = yaml.safe_load(UPLOADS_SPEC.read_text())["data"]
    for which, per_tag, set_seed in (("training", train_per_tag, seed + 20), ("holdout", holdout_per_tag, seed + 21)):
        client = blob_service.get_container_client(data[which]["container"])
        if not client.exists():
            client.create_container()
        for tag, file_name, image in training_images(per_tag, set_seed):
            client.upload_blob(f"{data[which]['prefix']}{tag}/{file_name}", image, overwrite=True)
    print(f"  {2 * train_per_tag} training and {2 * holdout_per_tag} holdout images ({SYMBOL} and {CLEAN}) "
          f"in training/ and holdout/ {data['training']['prefix']}")
    cvops("project apply (uploads)", "project", "apply", spec)
    cvops("images upload (uploads)", "images", "upload", "--spec", spec)
    cvops("train (uploads)", "train", "--wait", "--spec", spec)
    report = root / "reports" / "uploads"
    cvops("evaluate (uploads)", "evaluate", "--spec", spec, "--report", str(report))
    cvops("publish (uploads)", "publish", "--spec", spec)
    status = cvops("status (uploads)", "status", "--spec", spec, json_out=True)

    policy_file = root / "uploads-policy.yaml"
    suggested = cvops("policy suggest (uploads)", "policy", "suggest", "--spec", spec, "--evaluation",
                      str(report / "evaluation.json"), "--moderation-from", str(SEED_POLICY), "--out", str(policy_file),
                      json_out=True)
    bands = suggested["policy"].get("moderation", {})
    print("  moderation bands from policy.yaml: " + ", ".join(
        f"{name} " + " ".join(f"{k} {v}" for k, v in band.items()) for name, band in bands.items()))

    settings = container_settings()
    for container in settings.values():
        client = blob_service.get_container_client(container)
        if not client.exists():
            client.create_container()
    items = uploads(seed)
    incoming = blob_service.get_container_client(settings[routes.INCOMING.setting])
    for name, image, _ in items:
        incoming.upload_blob(name, image, overwrite=True)
    env.update({
        **settings,
        "CVOPS_POLICY": str(policy_file),
        "VISION_PROJECT_ID": str((status.get("project") or {}).get("id") or ""),
        "VISION_PUBLISH_NAME": str(yaml.safe_load(UPLOADS_SPEC.read_text())["publish"]["name"]),
        # One multi-service resource: the moderation API at the prediction endpoint, with its key.
        "VISION_MODERATION_ENDPOINT": env["VISION_PREDICTION_ENDPOINT"],
        "VISION_MODERATION_KEY": env["VISION_PREDICTION_KEY"],
        "CVOPS_MODERATION_API": "computer-vision",
    })
    env.pop("CVOPS_MODEL", None)
    print(f"  {len(items)} uploads in {settings[routes.INCOMING.setting]}/, routed with moderation on "
          "(CVOPS_MODERATION_API=computer-vision)")
    cvops("route (uploads)", "function", "run-local", "--once")
    results = next(route for route in routes.OUTPUTS if route.key == "results")
    summary = tally(read_records(blob_service, settings[results.setting]), items)
    summary["bands"] = bands
    summary["review_container"] = settings[next(r for r in routes.OUTPUTS if r.key == "review").setting]
    return summary


def print_moderation(summary: Mapping[str, Any]) -> None:
    """The stage's lines in the demo's summary: blocked, review (and why), accepted."""
    outcomes = summary["outcomes"]
    tags = summary["accepted_tags"]
    print(f"\nModeration (uploads): {summary['uploads']} uploads, {outcomes.get('rejected', 0)} blocked, "
          f"{outcomes.get('review', 0)} sent to review, {outcomes.get('accepted', 0)} accepted "
          f"({tags.get(CLEAN, 0)} {CLEAN}, {tags.get(SYMBOL, 0)} flagged {SYMBOL} by the classifier into "
          f"accepted{SUFFIX}/{SYMBOL}/)")
    for outcome, label in (("rejected", "blocked"), ("review", "review")):
        why = summary["why"].get(outcome) or {}
        if why:
            print(f"  {label} because: " + ", ".join(f"{reason} {n}" for reason, n in sorted(why.items())))
    for outcome, name, what, reasons in summary["lines"]:
        if outcome != "accepted":
            print(f"  {outcome:<9} {name} ({what}): {reasons}")
    misjudged = sum(1 for outcome, _, what, reasons in summary["lines"]
                    if what == "clean" and outcome != "accepted" and " score " in reasons)
    if misjudged:
        print(f"  {misjudged} drawn clean but stopped by moderation: the local stand-in measures colour, not content "
              "(a warm scene can read as skin); people's decisions on such images are what `cvops review stats` "
              "weighs per band")

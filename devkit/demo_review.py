"""The demo's last stage: people decide the images the policy sent to review, and the decisions go back into training.

What it runs is what an operator and a reviewer do: `cvops review serve` (a child process, like every other stage),
the page opened in a browser (headless Chromium driven by Playwright, pressing the keys a person presses), then
`cvops review stats`, `cvops review export`, `cvops images upload` of that manifest, `cvops train --wait`, `cvops
evaluate` and `cvops publish`. The demo's reviewer knows each image's truth because the demo drew it
(:func:`review_truth`); the numbers it prints are the loop's: how often the model agreed with people on the reviewed
images before and after retraining, and the holdout accuracy before and after.

Without Chromium (/usr/bin/chromium, :mod:`devkit.browser`) the stage says so in one line and is skipped: it needs
a browser, as a person does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvops.errors import CvopsError
from devkit.browser import CHROMIUM_ARGS, chromium_path, missing_reason
from devkit.local_services import REPO_ROOT
from functions.naming import printable

REJECT = "rejected"


def review_truth(incoming: Sequence[tuple[str, bytes, str]], classes: Sequence[str]) -> dict[str, str]:
    """What the demo's reviewer answers for each incoming image, by how the demo drew it: a scene's own class; for a
    two-scene photo (``ambiguous: beach + forest``) its first class, as the project is Multiclass and a person must
    name one (a wooded shore is a beach); ``rejected`` for anything that is no scene (the oversized noise image, the
    bad files). Pure."""
    truth: dict[str, str] = {}
    for name, _, what in incoming:
        if what in classes:
            truth[name] = what
        elif what.startswith("ambiguous: "):
            truth[name] = what.removeprefix("ambiguous: ").split(" + ")[0]
        else:
            truth[name] = REJECT
    return truth


@dataclass
class ReviewLoop:
    """What the stage did, for the summary."""

    skipped: str | None = None
    decided: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    exported: dict[str, Any] = field(default_factory=dict)
    agreed_before: int = 0
    agreed_after: int = 0
    accepted: int = 0
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    screenshot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "decided": self.decided, "stats": self.stats, "exported": self.exported,
                "agreed_before": self.agreed_before, "agreed_after": self.agreed_after, "accepted": self.accepted,
                "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after,
                "screenshot": self.screenshot}


def start_page(env: Mapping[str, str], log_path: Path, *, reviewer: str) -> tuple[subprocess.Popen, str]:
    """`cvops review serve` on a free loopback port; returns the process and the address it printed."""
    command = [sys.executable, "-m", "pipelines", "review", "serve", "--port", "0", "--reviewer", reviewer]
    print(f"\n$ cvops review serve --port 0 --reviewer {reviewer}   (until the reviews are done)", flush=True)
    with open(log_path, "w", encoding="utf-8") as log:  # the child keeps its own copy: its request log goes there
        proc = subprocess.Popen(command, env=dict(env), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("review page: http://"):
        proc.kill()
        proc.wait(timeout=10)
        raise CvopsError(f"cvops review serve did not start: {log_path.read_text(encoding='utf-8').strip()[-300:]}")
    print(f"  {line.strip()}", flush=True)
    return proc, line.split()[2]


def decide_in_browser(url: str, truth: Mapping[str, str], *, screenshot: Path, browser: Any = None) -> list[dict[str, Any]]:
    """Open the page in headless Chromium and decide every waiting image as the demo's reviewer: the key shown on the
    true tag's button, or ``x`` to reject; ``s`` skips an image the demo did not draw. Returns one entry per image.
    ``browser``: a Playwright browser already running (tests); else one is launched for the call."""
    if browser is not None:
        return _decide(browser, url, truth, screenshot)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium_path()), args=CHROMIUM_ARGS,
                                              headless=True)
        try:
            return _decide(launched, url, truth, screenshot)
        finally:
            launched.close()


def _decide(browser: Any, url: str, truth: Mapping[str, str], screenshot: Path) -> list[dict[str, Any]]:
    shown = {printable(name): answer for name, answer in truth.items()}
    decided: list[dict[str, Any]] = []
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    try:
        page.goto(url)
        seen: set[str] = set()
        while "/item/" in page.url:
            key = page.url.rsplit("/", 1)[-1]
            if key in seen:
                break  # only images the demo skipped are left
            seen.add(key)
            if not decided:
                page.wait_for_function("() => document.querySelector('.picture img').complete")
                page.screenshot(path=str(screenshot))
            name = page.locator("h1.name").inner_text()
            top = page.locator("tr.top .tag").inner_text() if page.locator("tr.top .tag").count() else None
            answer = shown.get(name)
            if answer is None:
                press = "s"
            elif answer == REJECT:
                press = "x"
            else:
                press = page.locator(f'button.pick[value="{answer}"]').get_attribute("data-keys").split()[-1]
            page.keyboard.press(press)
            page.wait_for_function("k => !location.pathname.endsWith(k)", arg=key, timeout=30_000)
            page.wait_for_load_state()
            note = " ".join(page.locator(".flash").all_inner_texts())
            decided.append({"name": name, "model": top, "answer": answer or "skipped", "key": press, "page": note})
            print(f"  key {press!r:<4} {name}: model said {top}, the reviewer says {answer or 'skip'}", flush=True)
    finally:
        page.close()
    return decided


def classify_top_tags(env: Mapping[str, str], images: Mapping[str, bytes]) -> dict[str, str | None]:
    """The published model's top tag for each image (the Prediction API, as the Function App calls it)."""
    from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
    from msrest.authentication import ApiKeyCredentials

    client = CustomVisionPredictionClient(env["VISION_PREDICTION_ENDPOINT"],
                                          ApiKeyCredentials(in_headers={"Prediction-key": env["VISION_PREDICTION_KEY"]}))
    tops: dict[str, str | None] = {}
    for name, data in images.items():
        result = client.classify_image(env["VISION_PROJECT_ID"], env["VISION_PUBLISH_NAME"], data)
        best = max(result.predictions or [], key=lambda p: p.probability, default=None)
        tops[name] = best.tag_name if best else None
    return tops


def run_review_loop(cvops: Callable[..., Any], env: Mapping[str, str], root: Path, spec: Path,
                    incoming: Sequence[tuple[str, bytes, str]], classes: Sequence[str],
                    reports: Path) -> ReviewLoop:
    """The stage: decide in the page, stats, export, upload, retrain, evaluate, publish, and the numbers before/after.
    ``cvops`` runs one `cvops` command as the demo's other stages do (``cvops(stage, *args, json_out=...)``)."""
    loop = ReviewLoop()
    loop.skipped = missing_reason()
    if loop.skipped:
        print(f"  review step skipped: {loop.skipped}")
        return loop
    truth = review_truth(incoming, classes)
    since = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")  # this run's decisions only
    proc, url = start_page(env, root / "logs" / "review-serve.log", reviewer="demo-reviewer")
    try:
        loop.screenshot = str(reports / "review-page.png")
        loop.decided = decide_in_browser(url, truth, screenshot=Path(loop.screenshot))
    except Exception as exc:  # Playwright's errors are no CvopsError: the demo stops with one line, not a traceback
        raise CvopsError(f"demo stage 'review' failed in the browser: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}",
                         hint=f"the page's request log: {root / 'logs' / 'review-serve.log'}") from exc
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if not loop.decided:
        print("  nothing was waiting for review")
        return loop

    loop.stats = cvops("review stats", "review", "stats", "--since", since, json_out=True)
    print(f"  {loop.stats['decisions']} decisions, {loop.stats['agreed_with_top_tag']} agreed with the model's top tag")
    for tag in loop.stats["tags"]:
        print(f"  {tag['tag']}: {tag['note']}")
    manifest = root / "reviewed.jsonl"
    loop.exported = cvops("review export", "review", "export", "--since", since, "--out", str(manifest), json_out=True)
    print(f"  {loop.exported['images']} reviewed images in {manifest} ({loop.exported['rejected_left_out']} rejected "
          "left out: a rejection is no label to train on)")
    cvops("images upload (reviewed)", "images", "upload", str(manifest), "--spec", str(spec))
    cvops("train (with reviews)", "train", "--wait", "--spec", str(spec))
    cvops("evaluate (with reviews)", "evaluate", "--spec", str(spec), "--report", str(reports / "scenes-reviewed"))
    cvops("publish (with reviews)", "publish", "--spec", str(spec))

    loop.accuracy_before = json.loads((reports / "scenes" / "evaluation.json").read_text()).get("accuracy")
    loop.accuracy_after = json.loads((reports / "scenes-reviewed" / "evaluation.json").read_text()).get("accuracy")
    by_shown = {printable(name): (name, data) for name, data, _ in incoming}
    accepted = [d for d in loop.decided if d["answer"] not in (REJECT, "skipped")]
    loop.accepted = len(accepted)
    loop.agreed_before = sum(1 for d in accepted if d["model"] == d["answer"])
    after = classify_top_tags(env, {d["name"]: by_shown[d["name"]][1] for d in accepted if d["name"] in by_shown})
    loop.agreed_after = sum(1 for d in accepted if after.get(d["name"]) == d["answer"])
    for d in accepted:
        d["model_after"] = after.get(d["name"])
    return loop


def print_review(loop: ReviewLoop) -> None:
    """The loop's lines in the demo's summary."""
    if loop.skipped:
        print(f"\nReview: skipped ({loop.skipped})")
        return
    if not loop.decided:
        print("\nReview: nothing was waiting")
        return
    rejected = sum(1 for d in loop.decided if d["answer"] == REJECT)
    print(f"\nReview: {len(loop.decided)} images decided in the review page ({loop.accepted} tagged, {rejected} rejected), "
          f"each recorded once; {loop.exported.get('images', 0)} exported and uploaded for training")
    print(f"  the model's top tag matched the reviewer's on {loop.agreed_before} of {loop.accepted} before retraining, "
          f"{loop.agreed_after} of {loop.accepted} after (the published iteration now trained on them)")
    if loop.accuracy_before is not None and loop.accuracy_after is not None:
        print(f"  scenes holdout accuracy {loop.accuracy_before:.3f} before, {loop.accuracy_after:.3f} after "
              "(the holdout has no two-scene photos: it shows the new iteration lost nothing)")
    for d in loop.decided:
        if d["answer"] not in (REJECT, "skipped"):
            print(f"  {d['name']}: model {d['model']} -> reviewer {d['answer']} -> retrained model {d.get('model_after')}")
    if loop.screenshot:
        print(f"  the page, before the first decision: {loop.screenshot}")

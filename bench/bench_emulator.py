"""How fast the local Custom Vision service learns and answers, measured through its HTTP API with the official SDK.

Starts the real service (``python -m emulator --in-memory`` on a free loopback port), creates a Multiclass project,
uploads generated scenes with ``create_images_from_files``, trains Quick and a short Advanced iteration (timed from the
train call until polling sees ``Completed``), publishes, then times ``classify_image`` calls one after another on
held-out scenes and reports p50 / p99 latency and accuracy. It prints numbers and asserts nothing: it is for watching
trends, not for gating. Run it with ``python bench/bench_emulator.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script from a fresh clone

from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)

from cvops import limits
from cvops.clients import prediction_client, training_client
from devkit import scenes
from devkit.local_services import running_local_custom_vision

BATCH = limits.MAX_IMAGES_PER_BATCH  # Custom Vision's most images per upload call


def _percentile_ms(seconds: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(seconds) * 1000, q)), 2)


def _wait_for_iteration(trainer: Any, project_id: str, iteration_id: str, timeout: float) -> tuple[str, float]:
    """Poll like a client does (every 0.1 s here, to measure closely); return final status and seconds."""
    started = time.perf_counter()
    while True:
        iteration = trainer.get_iteration(project_id, iteration_id)
        if iteration.status in ("Completed", "Failed"):
            return iteration.status, time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            return f"still {iteration.status} after {timeout:.0f} s", time.perf_counter() - started
        time.sleep(0.1)


def _train(trainer: Any, project_id: str, timeout: float, **options: Any) -> tuple[Any, float, str]:
    started = time.perf_counter()
    iteration = trainer.train_project(project_id, **options)
    status, _ = _wait_for_iteration(trainer, project_id, iteration.id, timeout)
    return iteration, time.perf_counter() - started, status


def run(per_class: int = 50, held_out_per_class: int = 25, predictions: int = 200, advanced_budget_hours: int = 1,
        timeout: float = 300.0) -> dict[str, Any]:
    """Run the whole measurement; return the numbers (also what `main` prints)."""
    results: dict[str, Any] = {"images": per_class * len(scenes.CLASSES)}
    t0 = time.perf_counter()
    train_items = scenes.dataset(scenes.CLASSES, per_class, seed=1)
    test_items = scenes.dataset(scenes.CLASSES, held_out_per_class, seed=2)
    results["generate_seconds"] = round(time.perf_counter() - t0, 2)

    with running_local_custom_vision() as service:
        trainer = training_client(service.endpoint, service.training_key)
        predictor = prediction_client(service.endpoint, service.prediction_key)
        project = trainer.create_project("bench-scenes", classification_type="Multiclass")
        tags = {name: trainer.create_tag(project.id, name).id for name in scenes.CLASSES}

        t0 = time.perf_counter()
        for start in range(0, len(train_items), BATCH):
            entries = [
                ImageFileCreateEntry(name=item.name, contents=item.data, tag_ids=[tags[item.labels[0]]])
                for item in train_items[start : start + BATCH]
            ]
            summary = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
            failed = [i.status for i in summary.images if i.status not in ("OK", "OKDuplicate")]
            if failed:
                raise RuntimeError(f"upload failed for {len(failed)} images: {sorted(set(failed))}")
        results["upload_seconds"] = round(time.perf_counter() - t0, 2)

        quick, seconds, status = _train(trainer, project.id, timeout)
        results["quick_train_seconds"] = round(seconds, 2)
        results["quick_status"] = status
        perf = trainer.get_iteration_performance(project.id, quick.id, threshold=0.5)
        results["quick_cv"] = {"precision": round(perf.precision, 3), "recall": round(perf.recall, 3),
                               "averagePrecision": round(perf.average_precision, 3)}

        advanced, seconds, status = _train(trainer, project.id, timeout, training_type="Advanced",
                                           reserved_budget_in_hours=advanced_budget_hours, force_train=True)
        results["advanced_train_seconds"] = round(seconds, 2)
        results["advanced_status"] = status
        if status == "Completed":
            perf = trainer.get_iteration_performance(project.id, advanced.id, threshold=0.5)
            results["advanced_cv"] = {"precision": round(perf.precision, 3), "recall": round(perf.recall, 3),
                                      "averagePrecision": round(perf.average_precision, 3)}

        trainer.publish_iteration(project.id, quick.id, "bench", service.prediction_resource_id)
        tag_of_id = {v: k for k, v in tags.items()}
        latencies, correct = [], 0
        for i in range(predictions):
            item = test_items[i % len(test_items)]
            t0 = time.perf_counter()
            answer = predictor.classify_image(project.id, "bench", io.BytesIO(item.data))
            latencies.append(time.perf_counter() - t0)
            best = max(answer.predictions, key=lambda p: p.probability)
            correct += tag_of_id.get(best.tag_id) == item.labels[0]
        results["predict_calls"] = predictions
        results["predict_p50_ms"] = _percentile_ms(latencies, 50)
        results["predict_p99_ms"] = _percentile_ms(latencies, 99)
        results["held_out_accuracy"] = round(correct / predictions, 3)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=50, help="training images per class (4 classes)")
    parser.add_argument("--held-out-per-class", type=int, default=25, help="held-out images per class")
    parser.add_argument("--predictions", type=int, default=200, help="classify_image calls to time")
    parser.add_argument("--advanced-budget-hours", type=int, default=1,
                        help="reservedBudgetInHours for the Advanced run (the local service scales it down)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    results = run(args.per_class, args.held_out_per_class, args.predictions, args.advanced_budget_hours)
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:24} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

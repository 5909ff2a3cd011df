"""The demo's export stage: the scenes iteration exported as ONNX (`cvops export`), then the same incoming images routed
a second time by the Function App with CVOPS_MODEL set to the downloaded zip, and both runs compared.

Why a second set of containers: the first run's records and copies stay exactly as the API path left them (the review
step reads them), and each run proves on its own that every image got exactly one record. Why the comparison: Custom
Vision retires on 2028-09-25 (docs/retirement.md); an operator switching to the exported model wants to see that it
routes as the service did, and how much faster it is without a prediction endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient

from functions import routes

SUFFIX = "-onnx"
"""The second run's containers: each of the app's containers with this suffix (incoming-onnx, accepted-onnx...)."""

Cvops = Callable[..., Any]


def container_settings(suffix: str = SUFFIX) -> dict[str, str]:
    """The app's container settings pointing at the second run's containers."""
    return {route.setting: route.default + suffix for route in (routes.INCOMING, *routes.OUTPUTS)}


def read_records(blob_service: BlobServiceClient, container: str) -> dict[str, list[dict[str, Any]]]:
    """Result records of one run, by incoming blob name (from the date-partitioned JSON Lines)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    client = blob_service.get_container_client(container)
    for blob in client.list_blobs():
        if blob.name.endswith(".jsonl"):
            for line in client.download_blob(blob.name).readall().decode().splitlines():
                if line.strip():
                    record = json.loads(line)
                    by_name.setdefault(record["blob"]["name"], []).append(record)
    return by_name


def the_record(by_name: Mapping[str, list[dict[str, Any]]], name: str, problems: list[str]) -> dict[str, Any] | None:
    """The one result record of ``name`` (routed exactly once); None, with the problem added, when there are none
    or several."""
    found = by_name.get(name, [])
    if len(found) != 1:
        problems.append(f"{name}: {len(found)} result records (expected exactly 1)")
        return None
    return found[0]


def top_tag(record: Mapping[str, Any]) -> str | None:
    """The tag with the highest probability, or None for a record with no predictions (quarantined files)."""
    predictions = record.get("predictions") or []
    return max(predictions, key=lambda p: p.get("probability", 0))["tag"] if predictions else None


def compare(api: Mapping[str, list[dict[str, Any]]], exported: Mapping[str, list[dict[str, Any]]],
            names: Sequence[str]) -> dict[str, Any]:
    """Agreement of two runs over the same images: same outcome, same top tag (where both runs gave one), and the images
    without exactly one record in the exported run (the problems the demo fails on)."""
    problems = [f"{name}: {len(exported.get(name, []))} result records with the exported model (expected exactly 1)"
                for name in names if len(exported.get(name, [])) != 1]
    both = [(api[name][0], exported[name][0]) for name in names
            if len(api.get(name, [])) == 1 and len(exported.get(name, [])) == 1]
    tagged = [(top_tag(a), top_tag(e)) for a, e in both if top_tag(a) is not None and top_tag(e) is not None]
    return {
        "images": len(both),
        "same_outcome": sum(1 for a, e in both if a["outcome"] == e["outcome"]),
        "both_tagged": len(tagged),
        "same_top_tag": sum(1 for a, e in tagged if a == e),
        "differences": [f"{a['blob']['name']}: {a['outcome']} / {e['outcome']}" for a, e in both
                        if a["outcome"] != e["outcome"]],
        "problems": problems,
    }


def run_export_comparison(cvops_api: Cvops, cvops_model: Cvops, env: dict[str, str], blob_service: BlobServiceClient,
                          root: Path, spec: Path, incoming: Sequence[tuple[str, bytes, str]],
                          timings: Mapping[str, float]) -> dict[str, Any]:
    """Export, route again with the model, compare. ``cvops_model`` runs with ``env`` (the second run's settings),
    which this function fills in; ``timings`` holds the stages' seconds ("route" for the API run)."""
    model = root / "model.zip"
    cvops_api("export", "export", "--spec", str(spec), "--platform", "ONNX", "--out", str(model))
    settings = container_settings()
    for container in settings.values():
        blob_service.get_container_client(container).create_container()
    client = blob_service.get_container_client(settings[routes.INCOMING.setting])
    for name, data, _ in incoming:
        client.upload_blob(name, data, overwrite=True)
    env.update({**settings, "CVOPS_MODEL": str(model)})
    print(f"  the same {len(incoming)} images in {settings[routes.INCOMING.setting]}/, routed with CVOPS_MODEL={model.name}")
    cvops_model("route (exported model)", "function", "run-local", "--once")
    names = [name for name, _, _ in incoming]
    results = next(route for route in routes.OUTPUTS if route.key == "results")
    summary = compare(read_records(blob_service, results.default), read_records(blob_service, settings[results.setting]),
                      names)
    summary["images_per_second"] = {run: round(len(incoming) / timings[stage], 1)
                                    for run, stage in (("api", "route"), ("model", "route (exported model)"))
                                    if timings.get(stage)}
    summary["model"] = str(model)
    return summary


def print_export(summary: Mapping[str, Any]) -> None:
    """Agreement and speed of the two runs, side by side."""
    speed = summary["images_per_second"]
    print(f"\nExported model ({summary['model']}) vs the Prediction API on the same {summary['images']} images: "
          f"{summary['same_outcome']} of {summary['images']} same outcome, "
          f"{summary['same_top_tag']} of {summary['both_tagged']} same top tag")
    print(f"  speed (run-local, process start included): API {speed.get('api', 0):.1f} images/s, "
          f"exported model {speed.get('model', 0):.1f} images/s")
    for difference in summary["differences"]:
        print(f"  differs: {difference}")

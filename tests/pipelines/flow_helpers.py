"""Helpers for the command-line flow tests: a labelled scene set in Azurite, a spec naming it, and `cvops` invoked
in-process with click's runner (real HTTP to the real local service and Azurite underneath)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from azure.storage.blob import BlobServiceClient
from click.testing import CliRunner, Result

from devkit import scenes
from pipelines.cli import cli

SIZE = (160, 120)


@dataclass
class World:
    env: dict[str, str]
    spec_path: Path
    name: str
    training: str
    holdout: str
    blob_service: BlobServiceClient

    def run(self, *args: str, json_out: bool = True) -> tuple[Result, Any]:
        """`cvops ARGS [--json]`; returns the result and the parsed JSON (None when stdout is not JSON)."""
        argv = [*args, "--json"] if json_out else list(args)
        result = CliRunner().invoke(cli, argv, env=self.env, catch_exceptions=False)
        data = None
        if json_out:
            try:
                data = json.loads(result.stdout)
            except json.JSONDecodeError:
                data = None
        return result, data


def settings_env(local_cv, azurite) -> dict[str, str]:
    return {
        "VISION_TRAINING_ENDPOINT": local_cv.endpoint, "VISION_TRAINING_KEY": local_cv.training_key,
        "VISION_PREDICTION_ENDPOINT": local_cv.endpoint, "VISION_PREDICTION_KEY": local_cv.prediction_key,
        "VISION_PREDICTION_RESOURCE_ID": local_cv.prediction_resource_id,
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "AZURE_STORAGE_ACCOUNT_URL": "",
        "CVOPS_SPEC": "", "CVOPS_PROJECT": "", "CVOPS_TIER": "",
    }


def upload_folder_per_tag(blob_service: BlobServiceClient, container: str, prefix: str, per_class: int, seed: int,
                          classes=scenes.CLASSES) -> int:
    client = blob_service.get_container_client(container)
    if not client.exists():
        client.create_container()
    items = scenes.dataset(classes, per_class, seed, size=SIZE)
    for item in items:
        client.upload_blob(f"{prefix}{item.labels[0]}/{item.name}", item.data, overwrite=True)
    return len(items)


def upload_manifest_set(blob_service: BlobServiceClient, container: str, prefix: str, per_entry: int,
                        seed: int) -> int:
    """Multi-label scenes beside a CSV manifest (path,tags) that lists them relative to itself."""
    client = blob_service.get_container_client(container)
    if not client.exists():
        client.create_container()
    entries = [*scenes.CLASSES, *scenes.MULTILABEL_COMBOS]
    items = scenes.dataset(entries, per_entry, seed, size=SIZE)
    lines = ["path,tags"]
    for item in items:
        client.upload_blob(f"{prefix}img/{item.name}", item.data, overwrite=True)
        lines.append(f"img/{item.name},{';'.join(item.labels)}")
    client.upload_blob(f"{prefix}labels.csv", "\n".join(lines) + "\n", overwrite=True)
    return len(items)


def write_spec(path: Path, name: str, *, classification_type: str = "Multiclass", training: dict,
               holdout: dict | None = None, gates: dict | None = None, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "project": {"name": name, "classification_type": classification_type, "domain": "General (compact)"},
        "tags": [{"name": "beach", "threshold": 0.6}, {"name": "forest"}, {"name": "mountain"}, {"name": "city"}],
        "evaluation": {"threshold": 0.5, "target_precision": 0.9},
        "gates": gates or {"min_precision": 0.5, "min_recall": 0.5, "min_map": 0.5},
        "publish": {"name": name, "keep": 2},
        "data": {"training": training, **({"holdout": holdout} if holdout else {})},
        **extra,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

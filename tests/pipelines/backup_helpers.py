"""A project with tagged, multi-tag and untagged images in a local Custom Vision service, for the backup and restore
tests: made through the official SDK, as a user's project would be."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry

from cvops import clients
from devkit import scenes

SIZE = (160, 120)


@dataclass
class Seeded:
    project_id: str
    name: str
    tagged: int
    untagged: int
    per_tag: dict[str, int]
    sha256: dict[str, tuple[str, ...]]  # the uploaded bytes' SHA-256 -> their tags (sorted)


def seed_project(service, name: str, *, classification_type: str, per_class: int, per_combo: int = 0,
                 untagged: int = 0, seed: int = 1) -> Seeded:
    client = clients.training_client(service.endpoint, service.training_key)
    domain = next(d.id for d in client.get_domains() if d.name == "General (compact)" and d.type == "Classification")
    project = client.create_project(name, domain_id=domain, classification_type=classification_type)
    tags = {c: client.create_tag(project.id, c).id for c in scenes.CLASSES}
    items = scenes.dataset(scenes.CLASSES, per_class, seed, size=SIZE)
    if per_combo:
        items += scenes.dataset(scenes.MULTILABEL_COMBOS, per_combo, seed, size=SIZE)
    entries = [ImageFileCreateEntry(name=i.name, contents=i.data, tag_ids=[tags[t] for t in i.labels]) for i in items]
    entries += [ImageFileCreateEntry(name=i.name, contents=i.data)
                for i in scenes.dataset(scenes.CLASSES, untagged // len(scenes.CLASSES), seed + 1000, size=SIZE)]
    for start in range(0, len(entries), 64):
        summary = client.create_images_from_files(project.id, ImageFileCreateBatch(images=entries[start:start + 64]))
        assert all(r.status == "OK" for r in summary.images), [r.status for r in summary.images]
    per_tag: dict[str, int] = {}
    for item in items:
        for t in item.labels:
            per_tag[t] = per_tag.get(t, 0) + 1
    hashes = {hashlib.sha256(e.contents).hexdigest(): tuple(sorted(
        next((i.labels for i in items if i.data == e.contents), ()))) for e in entries}
    return Seeded(project.id, name, len(items), len(entries) - len(items), per_tag, hashes)


class NoAzurite:
    """settings_env's storage, for commands that use none."""

    connection_string = ""


def run_cvops(env: dict[str, str], *args: str):
    """`cvops ARGS --json` in-process (click's runner; real HTTP underneath): the result and its parsed JSON."""
    import json

    from click.testing import CliRunner

    from pipelines.cli import cli

    result = CliRunner().invoke(cli, [*args, "--json"], env=env, catch_exceptions=False)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        data = None
    return result, data

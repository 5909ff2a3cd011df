"""Reviewed images back into training: `cvops review export` writes a manifest of what people decided, and
`cvops images upload --spec` with that manifest uploads exactly those images with the people's tags; `cvops review
stats` reports the agreement."""

from __future__ import annotations

import json

import pytest
from flow_helpers import SIZE, World, settings_env, unique, write_spec
from review_helpers import make_world

from devkit import scenes
from pipelines.review import decisions, manifest

pytestmark = [pytest.mark.emulator, pytest.mark.azurite]


@pytest.fixture
def world(blob_service):
    w = make_world(blob_service)
    yield w
    w.drop()


def test_the_manifest_holds_only_peoples_decisions_with_their_tags():
    accepted = {"decision": "accepted", "tags": ["city"], "destinations": ["accepted/city/a.jpg"],
                "reviewer": "ann", "decided_at": "2026-11-30T04:00:00+00:00", "key": "k1",
                "model": {"top_tag": "beach"}}
    rejected = {"decision": "rejected", "tags": [], "destinations": ["rejected/b.jpg"]}
    built = manifest.manifest_rows([accepted, rejected])
    assert [(r["path"], r["tags"]) for r in built.rows] == [("az://accepted/city/a.jpg", ["city"])]
    assert (built.rejected, built.skipped) == (1, 0)
    with pytest.raises(Exception, match="CSV manifest"):
        manifest.render(manifest.manifest_rows([{**accepted, "tags": ["a;b"]}]), csv_format=True)
    assert manifest.render(built, csv_format=True) == "path,tags\naz://accepted/city/a.jpg,city\n"


def test_exported_reviews_upload_exactly_the_reviewed_images_with_human_tags(world, local_cv, azurite,
                                                                           training_client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shots = scenes.dataset(["beach", "city", "forest"], 2, seed=31, size=SIZE)
    names = ['<script>alert("x")</script>.jpg', "shelf/quo'te\"s & amps.jpg", "plain.jpg", "rejected.jpg",
             "waiting.jpg"]
    scores = {"beach": 0.7, "city": 0.2, "forest": 0.1}
    records = [world.add(name, scores, data=shot.data) for name, shot in zip(names, shots, strict=False)]
    human = {0: ["city"], 1: ["beach"], 2: ["forest"]}  # image 0: the person overrules the model's beach
    for i, tags in human.items():
        assert decisions.decide(world.blob_service, world.config, records[i]["key"], reviewer="ann", tags=tags).applied
    assert decisions.decide(world.blob_service, world.config, records[3]["key"], reviewer="ann", tags=None,
                            reject=True).applied

    env = {**settings_env(local_cv, azurite), **world.env()}
    name = unique("reviewed")
    out = tmp_path / "reviewed.jsonl"
    spec = write_spec(tmp_path / "project.yaml", name, training={"manifest": str(out)})
    cli = World(env, spec, name, "", "", world.blob_service)
    result, summary = cli.run("review", "export", "--since", "2026-01-01", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert (summary["images"], summary["rejected_left_out"]) == (3, 1)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    accepted = world.containers["accepted"]
    assert sorted((r["path"], tuple(r["tags"])) for r in rows) == sorted([
        (f"az://{accepted}/city/<script>alert(\"x\")</script>.jpg", ("city",)),
        (f"az://{accepted}/beach/shelf/quo'te\"s & amps.jpg", ("beach",)),
        (f"az://{accepted}/forest/plain.jpg", ("forest",)),
    ])
    assert cli.run("review", "export", "--since", "2100-01-01", "--out", str(tmp_path / "none.jsonl"))[1]["images"] == 0

    assert cli.run("project", "apply", str(spec))[0].exit_code == 0
    result, up = cli.run("images", "upload", "--spec", str(spec))
    assert result.exit_code == 0, result.stderr
    assert up["created"] == 3
    project = next(p for p in training_client.get_projects() if p.name == name)
    uploaded = training_client.get_tagged_images(project.id, take=256)
    assert sorted(tuple(t.tag_name for t in im.tags) for im in uploaded) == [("beach",), ("city",), ("forest",)]
    assert training_client.get_image_count(project.id) == 3  # nothing untagged, nothing rejected, nothing waiting
    result, again = cli.run("images", "upload", "--spec", str(spec))
    assert result.exit_code == 0 and again["created"] == 0

    policy = tmp_path / "policy.yaml"
    policy.write_text('version: "p"\ntags: {beach: {threshold: 0.9}}\n')
    result, report = cli.run("review", "stats", "--min-support", "1", "--target", "0.5", "--policy", str(policy))
    assert result.exit_code == 0, result.stderr
    assert report["tags"][0]["threshold"] == 0.9
    assert (report["decisions"], report["agreed_with_top_tag"]) == (4, 1)
    beach = report["tags"][0]
    assert (beach["tag"], beach["reviewed"], beach["agreed"], beach["rejected"], beach["other_tag"]) == (
        "beach", 4, 1, 1, 2)


def test_without_any_storage_setting_the_error_names_the_settings(world, local_cv, azurite, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CVOPS_STORAGE", raising=False)
    env = {**settings_env(local_cv, azurite), **world.env(), "AZURE_STORAGE_CONNECTION_STRING": ""}
    cli = World(env, tmp_path / "none.yaml", "x", "", "", world.blob_service)
    result, _ = cli.run("review", "stats")
    assert result.exit_code == 2
    assert "AZURE_STORAGE_CONNECTION_STRING" in result.stderr and "CVOPS_STORAGE" in result.stderr

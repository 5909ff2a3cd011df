"""`cvops project restore`: a backup of a project in one local Custom Vision service restored into a second one
(another "resource"), through the `cvops` command; the same images (bytes and tags) and counts there, a rerun adds
nothing, and both trained give the same holdout accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from backup_helpers import NoAzurite, run_cvops, seed_project
from flow_helpers import settings_env, unique

from cvops import clients
from devkit import scenes
from pipelines import backup as bk
from pipelines.restore import multiclass_conflicts, target_spec
from pipelines.spec import ProjectSpec, TagSpec

pytestmark = [pytest.mark.emulator]


def _manifest(folder: Path) -> set[tuple[str, tuple[str, ...]]]:
    return {(r["sha256"], tuple(r["tags"])) for r in map(json.loads, (folder / bk.MANIFEST).read_text().splitlines())}


def test_restore_into_a_second_service_has_the_same_images_tags_and_counts_and_a_rerun_adds_nothing(
        local_cv, start_local_cv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seeded = seed_project(local_cv, unique("restore-ml"), classification_type="Multilabel", per_class=6, per_combo=2,
                          untagged=4)
    source_env, target = settings_env(local_cv, NoAzurite()), start_local_cv()
    target_env = settings_env(target, NoAzurite())
    result, backed = run_cvops(source_env, "project", "backup", "--project", seeded.project_id, "--out", "b1")
    assert result.exit_code == 0 and backed["verified"], result.stderr

    spec = tmp_path / "target.yaml"
    spec.write_text(yaml.safe_dump({"project": {"name": "moved", "classification_type": "Multilabel",
                                                "domain": "General (compact)"},
                                    "tags": [{"name": "beach", "description": "sand and sea"}]}))
    result, restored = run_cvops(target_env, "project", "restore", "--from", "b1", "--spec", str(spec))
    assert result.exit_code == 0, result.stderr
    total = seeded.tagged + seeded.untagged
    assert restored["upload"]["created"] == total and restored["mismatches"] == []
    assert restored["counts"]["tagged"] == seeded.tagged and restored["counts"]["untagged"] == seeded.untagged
    assert restored["upload"]["create_calls"] == 1  # 40 images: one call (64 per call)
    client = clients.training_client(target.endpoint, target.training_key)
    assert {t.name: t.image_count for t in client.get_tags(restored["project_id"])} == seeded.per_tag
    assert next(t for t in client.get_tags(restored["project_id"]) if t.name == "beach").description == "sand and sea"

    result, again = run_cvops(target_env, "project", "restore", "--from", "b1", "--spec", str(spec))
    assert result.exit_code == 0, result.stderr
    assert (again["upload"]["created"], again["upload"]["create_calls"], again["upload"]["skipped_already_uploaded"],
            again["tags_created"]) == (0, 0, total, [])
    assert client.get_image_count(restored["project_id"], tagging_status="All") == total

    # The target's own backup holds the same bytes with the same tags, untagged and multi-tag images included.
    result, _ = run_cvops(target_env, "project", "backup", "--project", "moved", "--out", "b2")
    assert result.exit_code == 0, result.stderr
    assert _manifest(tmp_path / "b2") == _manifest(tmp_path / "b1")


def test_a_damaged_backup_is_refused_before_anything_is_created(local_cv, start_local_cv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seeded = seed_project(local_cv, unique("restore-bad"), classification_type="Multiclass", per_class=2)
    result, _ = run_cvops(settings_env(local_cv, NoAzurite()), "project", "backup", "--project", seeded.project_id,
                          "--out", "b")
    assert result.exit_code == 0, result.stderr
    victim = sorted((tmp_path / "b" / "images").iterdir())[0]
    victim.write_bytes(b"x" + victim.read_bytes())
    target = start_local_cv()
    result, _ = run_cvops(settings_env(target, NoAzurite()), "project", "restore", "--from", "b", "--name", "x")
    assert result.exit_code != 0
    assert f"images/{victim.name}: its SHA-256 or size differs from the manifest" in result.stderr
    assert "nothing was restored" in result.stderr
    assert clients.training_client(target.endpoint, target.training_key).get_projects() == []


@pytest.mark.slow
def test_restored_and_trained_on_a_second_service_the_holdout_accuracy_matches_the_original(
        local_cv, start_local_cv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seeded = seed_project(local_cv, unique("restore-mc"), classification_type="Multiclass", per_class=12, untagged=8,
                          seed=3)
    holdout = tmp_path / "holdout"
    for item in scenes.dataset(scenes.CLASSES, 10, seed=4, size=(160, 120)):
        (holdout / item.labels[0]).mkdir(parents=True, exist_ok=True)
        (holdout / item.labels[0] / item.name).write_bytes(item.data)
    source_env, target = settings_env(local_cv, NoAzurite()), start_local_cv()
    target_env = settings_env(target, NoAzurite())

    result, _ = run_cvops(source_env, "project", "backup", "--project", seeded.project_id, "--out", "b")
    assert result.exit_code == 0, result.stderr
    result, restored = run_cvops(target_env, "project", "restore", "--from", "b")
    assert result.exit_code == 0, result.stderr
    assert restored["project"] == seeded.name

    accuracy = {}
    for name, env, project in (("original", source_env, seeded.project_id), ("restored", target_env, seeded.name)):
        result, trained = run_cvops(env, "train", "--project", project, "--wait", "--timeout", "120")
        assert result.exit_code == 0 and trained["outcome"] == "completed", result.stderr
        result, evaluated = run_cvops(env, "evaluate", "--project", project, "--holdout", str(holdout))
        assert result.exit_code == 0, result.stderr
        accuracy[name] = evaluated["holdout"]["accuracy"]
    assert accuracy["original"] > 0.6, accuracy  # a model that learned something, not two equal coin tosses
    assert abs(accuracy["original"] - accuracy["restored"]) <= 0.02, accuracy


def test_the_target_is_the_spec_with_the_backups_other_regular_tags_and_multi_tag_images_need_multilabel():
    doc = {"project": {"name": "scenes", "description": "d"}, "classificationType": "Multilabel",
           "domain": "General (compact)",
           "tags": [{"name": "beach", "type": "Regular"}, {"name": "City", "type": "Regular", "description": "c"},
                    {"name": "none", "type": "Negative"}]}
    own = target_spec(doc, None)
    assert (own.name, own.classification_type, own.domain, own.tag_names) == (
        "scenes", "Multilabel", "General (compact)", ("beach", "City"))
    spec = ProjectSpec(name="moved", classification_type="Multiclass", domain="General", tags=(TagSpec("city", "x"),))
    moved = target_spec(doc, spec, name="renamed")
    assert (moved.name, moved.domain, moved.tag_names) == ("renamed", "General", ("city", "beach"))
    rows = [{"path": "images/a.jpg", "tags": ["beach", "City"]}, {"path": "images/b.jpg", "tags": ["beach"]}]
    assert multiclass_conflicts(rows, "Multiclass") == ["images/a.jpg"]
    assert multiclass_conflicts(rows, "Multilabel") == []


def test_a_backup_folder_of_another_project_is_refused_not_mixed(local_cv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = seed_project(local_cv, unique("first"), classification_type="Multiclass", per_class=1)
    second = seed_project(local_cv, unique("second"), classification_type="Multiclass", per_class=1, seed=5)
    env = settings_env(local_cv, NoAzurite())
    assert run_cvops(env, "project", "backup", "--project", first.project_id, "--out", "b")[0].exit_code == 0
    result, _ = run_cvops(env, "project", "backup", "--project", second.project_id, "--out", "b")
    assert result.exit_code == 2
    assert f"b holds a backup of another project ({first.name!r}, {first.project_id})" in result.stderr
    assert len(list((tmp_path / "b" / "images").iterdir())) == 4

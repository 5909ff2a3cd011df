"""The release flow end to end, against the local Custom Vision service and Azurite, through the `cvops` command:
from nothing to a published, evaluated iteration; and a second run that changes nothing and uploads nothing twice."""

from __future__ import annotations

import math

import pytest
from flow_helpers import (
    World,
    settings_env,
    unique,
    upload_folder_per_tag,
    upload_manifest_set,
    write_spec,
)

pytestmark = [pytest.mark.emulator, pytest.mark.azurite, pytest.mark.slow]


@pytest.fixture
def world(local_cv, azurite, blob_service, tmp_path, monkeypatch) -> World:
    monkeypatch.chdir(tmp_path)  # no stray ./.env from the developer's checkout
    name = unique("scenes")
    training, holdout = unique("training"), unique("holdout")
    spec = write_spec(tmp_path / "project.yaml", name, training={"container": training, "prefix": "scenes/"},
                      holdout={"container": holdout, "prefix": "scenes/"})
    return World(settings_env(local_cv, azurite), spec, name, training, holdout, blob_service)


def test_multiclass_flow_from_empty_publishes_and_a_second_run_changes_nothing(world, training_client, tmp_path):
    n = upload_folder_per_tag(world.blob_service, world.training, "scenes/", 8, seed=1)
    upload_folder_per_tag(world.blob_service, world.holdout, "scenes/", 3, seed=2)
    spec = str(world.spec_path)

    result, plan = world.run("project", "apply", spec, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert [c["action"] for c in plan["changes"]] == ["create_project"] + ["create_tag"] * 4
    assert not any(p.name == world.name for p in training_client.get_projects()), "--dry-run changed something"

    for second_run in (False, True):
        result, applied = world.run("project", "apply", spec)
        assert result.exit_code == 0, result.stderr
        assert len(applied["changes"]) == (0 if second_run else 5)

        result, linted = world.run("images", "lint", "--spec", spec)
        assert result.exit_code == 0, result.stderr
        assert (linted["images"], linted["errors"]) == (n, 0)

        result, up = world.run("images", "upload", "--spec", spec)
        assert result.exit_code == 0, result.stderr
        if second_run:
            assert (up["created"], up["skipped_already_uploaded"], up["create_calls"]) == (0, n, 0)
        else:
            assert (up["created"], up["create_calls"], up["mode"], up["image_bytes_sent"]) == (
                n, math.ceil(n / 64), "urls", 0)

        result, trained = world.run("train", "--spec", spec, "--wait", "--timeout", "120")
        assert result.exit_code == 0, result.stderr
        assert trained["outcome"] == ("not_needed" if second_run else "completed")
        if not second_run:
            assert {t["tag"] for t in trained["performance"]["tags"]} == {"beach", "forest", "mountain", "city"}

        result, ev = world.run("evaluate", "--spec", spec, "--report", str(tmp_path / "report"))
        assert result.exit_code == 0, result.stderr
        holdout = ev["holdout"]
        assert holdout["n_images"] == 12 and len(holdout["confusion_matrix"]) == 4
        assert holdout["mean_average_precision"] > 0.7, "the local service learns the scenes"
        assert set(holdout["threshold_sweep"]) == {"beach", "forest", "mountain", "city"}
        assert (tmp_path / "report" / "evaluation.html").stat().st_size > 1000

        result, published = world.run("publish", "--spec", spec)
        assert result.exit_code == 0, result.stderr
        assert published["outcome"] == ("already_published" if second_run else "published")

        beach = next(b.name for b in world.blob_service.get_container_client(world.holdout).list_blobs()
                     if "/beach/" in b.name)
        result, predicted = world.run("predict", "--spec", spec, f"az://{world.holdout}/{beach}", "--no-store")
        assert result.exit_code == 0, result.stderr
        assert predicted["predictions"][0]["tag"] == "beach"
        assert predicted["passing"] == ["beach"]

    project = next(p for p in training_client.get_projects() if p.name == world.name)
    assert training_client.get_image_count(project.id) == n, "an image was uploaded twice"
    assert len(training_client.get_iterations(project.id)) == 1

    result, status = world.run("status", "--spec", spec)
    assert result.exit_code == 0, result.stderr
    assert status["images"] == n and status["published"] == {world.name: "Iteration 1"}
    assert [t["images"] for t in status["tags"]] == [8, 8, 8, 8]


def test_multilabel_flow_from_a_manifest(local_cv, azurite, blob_service, training_client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, training, holdout = unique("multi"), unique("mltrain"), unique("mlhold")
    n = upload_manifest_set(blob_service, training, "set/", 3, seed=5)
    upload_manifest_set(blob_service, holdout, "set/", 1, seed=6)
    spec = str(write_spec(tmp_path / "ml.yaml", name, classification_type="Multilabel",
                          training={"manifest": f"az://{training}/set/labels.csv"},
                          holdout={"manifest": f"az://{holdout}/set/labels.csv"},
                          gates={"min_map": 0.3}))
    world = World(settings_env(local_cv, azurite), tmp_path / "ml.yaml", name, training, holdout, blob_service)

    for second_run in (False, True):
        assert world.run("project", "apply", spec)[0].exit_code == 0
        result, linted = world.run("images", "lint", "--spec", spec)
        assert result.exit_code == 0 and linted["errors"] == 0, result.stdout
        result, up = world.run("images", "upload", "--spec", spec)
        assert result.exit_code == 0, result.stderr
        assert up["created"] == (0 if second_run else n)
        result, trained = world.run("train", "--spec", spec, "--wait", "--timeout", "120")
        assert result.exit_code == 0 and trained["outcome"] == ("not_needed" if second_run else "completed")
        result, ev = world.run("evaluate", "--spec", spec, "--target-recall", "0.9")
        assert result.exit_code == 0, result.stderr
        assert ev["holdout"]["multiclass"] is False and ev["holdout"]["confusion_matrix"] is None
        assert ev["holdout"]["n_images"] == 10
        result, _ = world.run("publish", "--spec", spec)
        assert result.exit_code == 0, result.stderr

    project = next(p for p in training_client.get_projects() if p.name == name)
    assert project.settings.classification_type == "Multilabel"
    assert training_client.get_image_count(project.id) == n
    images = training_client.get_tagged_images(project.id, take=256)
    assert max(len(im.tags) for im in images) == 2, "multi-label images keep both tags"

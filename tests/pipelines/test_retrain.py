"""`cvops retrain` against the local service and Azurite: people's review decisions become training data, the
challenger is published only when it is not worse than the champion on the holdout, and a run killed at any step is
finished by the next with one training."""

from __future__ import annotations

import pytest
from flow_helpers import SIZE, World, settings_env, unique, upload_folder_per_tag, write_spec
from review_helpers import make_world

from devkit import scenes
from pipelines import evaluation, publishing, retrain, upload
from pipelines.review import commands, decisions

pytestmark = [pytest.mark.azurite, pytest.mark.emulator, pytest.mark.slow]


class Killed(BaseException):  # like KeyboardInterrupt: not an error the command may catch
    """A stop between two steps, as a kill or a lost machine would leave it."""


@pytest.fixture
def world(local_cv, azurite, blob_service, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    review = make_world(blob_service)
    name = unique("retrain")
    training, holdout = unique("training"), unique("holdout")
    spec = write_spec(tmp_path / "project.yaml", name, training={"container": training, "prefix": "scenes/"},
                      holdout={"container": holdout, "prefix": "scenes/"},
                      gates={"min_precision": 0.3, "min_recall": 0.3, "min_map": 0.3})
    env = {**settings_env(local_cv, azurite), **review.env(), "CVOPS_STORAGE": azurite.connection_string}
    w = World(env, spec, name, training, holdout, blob_service)
    w.review = review  # type: ignore[attr-defined]
    yield w
    review.drop()


def champion(world: World, per_class: int, seed: int, *, mislabelled: int = 0) -> None:
    """Train and publish the first iteration on ``per_class`` images a tag, plus ``mislabelled`` a tag filed under
    the next tag's folder (a champion trained on noisy labels); a holdout of 6 a tag."""
    upload_folder_per_tag(world.blob_service, world.training, "scenes/", per_class, seed=seed)
    if mislabelled:
        classes = list(scenes.CLASSES)
        container = world.blob_service.get_container_client(world.training)
        for item in scenes.dataset(classes, mislabelled, seed + 50, size=SIZE):
            wrong = classes[(classes.index(item.labels[0]) + 1) % len(classes)]
            container.upload_blob(f"scenes/{wrong}/noisy-{item.name}", item.data, overwrite=True)
    upload_folder_per_tag(world.blob_service, world.holdout, "scenes/", 6, seed=99)
    spec = str(world.spec_path)
    for args in (("project", "apply", spec), ("images", "upload", "--spec", spec),
                 ("train", "--spec", spec, "--wait", "--timeout", "120"), ("publish", "--spec", spec)):
        result, _ = world.run(*args)
        assert result.exit_code == 0, (args, result.stderr)


def reviewed(world: World, per_class: int, seed: int, *, wrong: bool = False) -> int:
    """Scenes sent to review as the app does, then decided by a person (with the right tag, or a wrong one)."""
    classes = list(scenes.CLASSES)
    items = scenes.dataset(classes, per_class, seed, size=SIZE)
    for i, item in enumerate(items):
        truth = item.labels[0]
        tag = classes[(classes.index(truth) + 1) % len(classes)] if wrong else truth
        scores = {c: (0.55 if c == truth else 0.15) for c in classes}
        record = world.review.add(f"uploads/{seed}-{i:03d}.jpg", scores, data=item.data)
        result = decisions.decide(world.blob_service, world.review.config, record["key"], reviewer="alice",
                                  tags=[tag], reject=False)
        assert result.status == "applied"
    return len(items)


def iterations(world: World, training_client) -> list:
    project = next(p for p in training_client.get_projects() if p.name == world.name)
    return training_client.get_iterations(project.id)


def test_a_challenger_trained_on_reviewed_images_is_published_and_exported(world, training_client, tmp_path):
    champion(world, per_class=5, seed=1, mislabelled=4)
    added = reviewed(world, per_class=12, seed=2)
    result, plan = world.run("retrain", "--spec", str(world.spec_path), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert plan["outcome"] == "planned" and plan["steps"][0]["decisions"] == added
    assert len(iterations(world, training_client)) == 1, "--dry-run trained"

    result, data = world.run("retrain", "--spec", str(world.spec_path), "--report", str(tmp_path / "report"))
    assert result.exit_code == 0, result.stderr
    assert data["outcome"] == "published", data
    steps = {s["step"]: s for s in data["steps"]}
    assert steps["upload"]["created"] == added
    assert data["challenger"]["name"] != data["champion"]["name"]
    assert all(c["passed"] for c in data["comparisons"])
    assert [it.publish_name for it in iterations(world, training_client) if it.name == data["challenger"]["name"]] \
        == [world.name]
    assert (tmp_path / ".cvops" / "retrain" / world.name / f"{data['challenger']['name']}.onnx.zip").stat().st_size
    assert "| beach |" in (tmp_path / "report" / "retrain.md").read_text(encoding="utf-8")

    result, again = world.run("retrain", "--spec", str(world.spec_path))
    assert result.exit_code == 0 and again["outcome"] == "nothing_new", result.stderr
    assert len(iterations(world, training_client)) == 2, "a rerun trained again"


def test_a_challenger_worse_on_the_holdout_is_not_published_exit_1_with_the_numbers(world, training_client):
    champion(world, per_class=8, seed=1)
    reviewed(world, per_class=16, seed=3, wrong=True)
    result, data = world.run("retrain", "--spec", str(world.spec_path))
    assert result.exit_code == 1, result.stderr
    assert data["outcome"] == "kept_champion"
    worse = [c for c in data["comparisons"] if not c["passed"]]
    assert worse and all(c["challenger"] < c["champion"] - c["margin"] for c in worse)
    assert "kept the champion" in result.stderr and "worse than the champion's" in result.stderr
    published = [it for it in iterations(world, training_client) if it.publish_name == world.name]
    assert [it.name for it in published] == [data["champion"]["name"]]


def _kill_after(monkeypatch, module, name: str, *, calls: int = 1) -> dict:
    real = getattr(module, name)
    seen = {"n": 0}

    def killed(*args, **kwargs):
        seen["n"] += 1
        value = real(*args, **kwargs)
        if seen["n"] == calls:
            raise Killed(f"killed after {name}")
        return value

    monkeypatch.setattr(module, name, killed)
    return seen


@pytest.mark.parametrize("step", ["export", "upload", "train", "evaluate", "publish"])
def test_a_run_killed_after_each_step_is_finished_by_the_next_with_one_training(world, training_client, monkeypatch,
                                                                                   step):
    champion(world, per_class=5, seed=1, mislabelled=4)
    added = reviewed(world, per_class=12, seed=2)
    with monkeypatch.context() as patch:
        if step == "export":
            _kill_after(patch, commands, "export")
        elif step == "upload":
            _kill_after(patch, upload, "upload")
        elif step == "train":
            def stop(*args, **kwargs):
                raise Killed("killed while training")
            patch.setattr(retrain, "follow_training", stop)
        elif step == "evaluate":
            _kill_after(patch, evaluation, "evaluate_iteration", calls=2)
        else:
            _kill_after(patch, publishing, "publish")
        with pytest.raises(Killed):
            world.run("retrain", "--spec", str(world.spec_path))
    result, data = world.run("retrain", "--spec", str(world.spec_path))
    assert result.exit_code == 0, result.stderr
    assert data["outcome"] in ("published", "nothing_new"), data
    names = [it.name for it in iterations(world, training_client)]
    assert len(names) == 2, f"killed after {step}: {names}"
    project = next(p for p in training_client.get_projects() if p.name == world.name)
    assert training_client.get_image_count(project.id) == 4 * (5 + 4) + added, "an image was uploaded twice"
    published = [it.name for it in iterations(world, training_client) if it.publish_name == world.name]
    assert published == [n for n in names if n != "Iteration 1"]
    assert list((world.spec_path.parent / ".cvops" / "retrain" / world.name).glob("*.onnx.zip"))

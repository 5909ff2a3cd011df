"""`cvops policy suggest` writes a policy the Function App loads, from an evaluation file or by evaluating itself;
`cvops predict` routes with `functions.policy.decide`, given a policy file or from the spec's thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flow_helpers import World, settings_env, unique, upload_folder_per_tag, write_spec

from functions.policy import decide, load_policy
from pipelines.metrics import evaluate_scores

# The hand-checked numbers of tests/unit/test_policy_suggest.py: six scored images per tag (score, has the tag).
# beach: precision 0.8 with all 4 found from 0.6123 (written 0.61); city: its top score is a miss, 0.8 is never met.
HAND = {"beach": [(0.95, 1), (0.90, 1), (0.80, 0), (0.70, 1), (0.6123, 1), (0.30, 0)],
        "city": [(0.97, 0), (0.60, 1), (0.55, 0), (0.50, 1), (0.30, 0), (0.10, 0)]}


def hand_evaluation(path) -> None:
    tags = list(HAND)
    scores = np.array([[HAND[t][i][0] for t in tags] for i in range(6)])
    labels = np.array([[HAND[t][i][1] for t in tags] for i in range(6)])
    ev = evaluate_scores(labels, scores, tags, 0.5, False).to_dict()
    path.write_text(json.dumps({**ev, "holdout_source": "az://holdout/hand/", "iteration": "Iteration 7"}))


def test_suggest_from_an_evaluation_file_checks_by_hand_and_says_an_unmet_target_on_stderr(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipelines.cli import cli

    monkeypatch.chdir(tmp_path)
    hand_evaluation(tmp_path / "eval.json")
    spec = write_spec(tmp_path / "p.yaml", "hand", classification_type="Multilabel", training={"folder": "x"})
    result = CliRunner().invoke(cli, ["policy", "suggest", "--spec", str(spec), "--evaluation", "eval.json",
                                      "--target-precision", "0.8", "--out", "policy.yaml"],
                                env={"CVOPS_SPEC": "", "CVOPS_PROJECT": ""}, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    policy = load_policy("policy.yaml", tmp_path)
    assert (policy.threshold("beach"), policy.threshold("city")) == (0.61, 0.5)
    assert policy.threshold("forest") == 0.5 and policy.threshold("mountain") == 0.5   # not measured: spec's own
    assert policy.threshold("beach") != 0.6   # the spec's beach threshold (0.6) gives way to the measured one
    text = (tmp_path / "policy.yaml").read_text()
    assert "# beach: from 0.61 precision 0.800 (4 of 5), recall 1.000 (4 of 4); target precision 0.8 met" in text
    assert "city: target precision 0.8 NOT met: the best precision measured is 0.500" in result.stderr
    assert "NOT met" in text and "city" in text.split("NOT met or not measured for:")[1].splitlines()[0]
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:4]] == ["beach", "forest", "mountain", "city"]   # one line a tag
    assert lines[-1].startswith("wrote policy.yaml (version hand-iteration-7")


def test_suggest_moves_the_copied_moderation_bands_with_review_stats_json_and_needs_moderation_from(
        tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipelines.cli import cli
    from pipelines.review.stats import review_stats

    monkeypatch.chdir(tmp_path)
    hand_evaluation(tmp_path / "eval.json")
    spec = write_spec(tmp_path / "p.yaml", "hand", classification_type="Multilabel", training={"folder": "x"})
    # Ten reviews of images the adult band sent to people: all accepted up to 0.45, all blocked from 0.6.
    decisions = [{"decision": "rejected" if v >= 0.6 else "accepted", "tags": [] if v >= 0.6 else ["beach"],
                  "model": {"top_tag": "beach", "top_score": 0.9, "scores": [["beach", 0.9]],
                            "reason_codes": ["moderation_review"], "moderation_api": "computer-vision",
                            "moderation": [{"name": "adult", "band": "review", "value": v, "limit": 0.4}]}}
                 for v in (0.41, 0.42, 0.43, 0.44, 0.45, 0.6, 0.62, 0.64, 0.66, 0.68)]
    (tmp_path / "reviews.json").write_text(json.dumps({"ok": True, **review_stats(decisions, target=0.95,
                                                                                  min_support=5)}))
    shipped = str(pytest.importorskip("pathlib").Path(__file__).resolve().parents[2] / "policy.yaml")
    args = ["policy", "suggest", "--spec", str(spec), "--evaluation", "eval.json", "--target-precision", "0.8",
            "--out", "policy.yaml", "--moderation-reviews", "reviews.json"]
    env = {"CVOPS_SPEC": "", "CVOPS_PROJECT": ""}

    alone = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert alone.exit_code == 2 and "--moderation-from" in alone.stderr

    result = CliRunner().invoke(cli, [*args, "--moderation-from", shipped], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    policy = load_policy("policy.yaml", tmp_path, moderation_api="computer-vision")
    adult = policy.moderation["adult"]
    assert (adult.reject_above, adult.review_from) == (0.5, 0.5)     # blocked from 0.6 up; accepted up to 0.45
    assert policy.moderation["gore"].reject_above == 0.7              # no reviews: kept
    assert "moderation adult: reject_above 0.7 -> 0.5, review_from 0.4 -> 0.5" in result.stdout


def test_an_unreadable_evaluation_or_a_review_option_of_the_other_metric_is_exit_2(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipelines.cli import cli

    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "p.yaml", "hand", training={"folder": "x"})
    (tmp_path / "eval.json").write_text("{not json")
    env = {"CVOPS_SPEC": "", "CVOPS_PROJECT": ""}
    result = CliRunner().invoke(cli, ["policy", "suggest", "--spec", str(spec), "--evaluation", "eval.json",
                                      "--out", "out.yaml"], env=env)
    assert result.exit_code == 2 and "evaluation file eval.json is not JSON" in result.stderr
    hand_evaluation(tmp_path / "eval.json")
    result = CliRunner().invoke(cli, ["policy", "suggest", "--spec", str(spec), "--evaluation", "eval.json",
                                      "--review-recall", "0.9", "--out", "out.yaml"], env=env)
    assert result.exit_code == 2 and "--review-recall goes with a recall target" in result.stderr
    assert not (tmp_path / "out.yaml").exists()


# against the local service ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(local_cv, azurite, blob_service, tmp_path_factory) -> World:
    """A trained, published scenes project with a holdout set."""
    tmp = tmp_path_factory.mktemp("policy")
    name, training, holdout = unique("policy"), unique("poltrain"), unique("polhold")
    upload_folder_per_tag(blob_service, training, "s/", 6, seed=11)
    upload_folder_per_tag(blob_service, holdout, "s/", 3, seed=12)
    spec = write_spec(tmp / "p.yaml", name, training={"container": training, "prefix": "s/"},
                      holdout={"container": holdout, "prefix": "s/"})
    world = World(settings_env(local_cv, azurite), spec, name, training, holdout, blob_service)
    for args in (("project", "apply", str(spec)), ("images", "upload", "--spec", str(spec)),
                 ("train", "--spec", str(spec), "--wait", "--timeout", "120"), ("publish", "--spec", str(spec))):
        result, _ = world.run(*args)
        assert result.exit_code == 0, result.stderr
    return world


def holdout_images(world: World) -> list[str]:
    return [f"az://{world.holdout}/{b.name}" for b in
            world.blob_service.get_container_client(world.holdout).list_blobs()]


@pytest.mark.emulator
@pytest.mark.azurite
@pytest.mark.slow
def test_suggest_evaluates_itself_as_evaluate_does_and_the_app_loads_the_policy(published, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = str(published.spec_path)
    result, suggested = published.run("policy", "suggest", "--spec", spec, "--out", "itself.yaml",
                                      "--review-precision", "0.5")
    assert result.exit_code == 0, result.stderr
    assert suggested["source"].startswith(f"holdout az://{published.holdout}/s/ (12 images)")
    assert [t["tag"] for t in suggested["tags"]] == ["beach", "forest", "mountain", "city"]
    policy = load_policy("itself.yaml", tmp_path)
    assert policy.version == f"{published.name}-iteration-1"
    assert dict(policy.thresholds) == {t: r["threshold"] for t, r in suggested["policy"]["tags"].items()}

    # The same numbers through a file: `cvops evaluate --json` then `--evaluation` give the same policy.
    result, evaluated = published.run("evaluate", "--spec", spec)
    assert result.exit_code == 0, result.stderr
    (tmp_path / "eval.json").write_text(json.dumps(evaluated))
    result, from_file = published.run("policy", "suggest", "--spec", spec, "--evaluation", "eval.json",
                                      "--out", "from-file.yaml", "--review-precision", "0.5")
    assert result.exit_code == 0, result.stderr
    assert from_file["policy"] == suggested["policy"]
    for tag, entry in evaluated["holdout"]["threshold_sweep"].items():   # evaluate recommends with the same rule
        scores = [row for row in evaluated["holdout"]["curves"][tag]["thresholds"]]
        written = suggested["policy"]["tags"][tag]["threshold"]
        assert [s >= written for s in scores] == [s >= entry["recommended_threshold"] for s in scores]


@pytest.mark.emulator
@pytest.mark.azurite
@pytest.mark.slow
def test_suggest_without_a_holdout_reads_the_services_numbers_every_0_05(published, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "no-holdout.yaml", published.name,
                      training={"container": published.training, "prefix": "s/"})
    result, suggested = published.run("policy", "suggest", "--spec", str(spec), "--out", "service.yaml",
                                      "--target-recall", "0.8")
    assert result.exit_code == 0, result.stderr
    assert suggested["source"] == ("service (cross-validation on the training images) at 19 thresholds "
                                   "from 0.05 to 0.95")
    assert {t["support"] for t in suggested["tags"]} == {6}   # each tag's training images
    thresholds = {round(0.05 * i, 2) for i in range(1, 20)}
    assert all(r["threshold"] in thresholds for r in suggested["policy"]["tags"].values())
    load_policy("service.yaml", tmp_path)


@pytest.mark.emulator
@pytest.mark.azurite
@pytest.mark.slow
def test_predict_with_a_policy_routes_as_decide_says(published, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = str(published.spec_path)
    images = holdout_images(published)[:4]
    policies = {
        "bands.yaml": "version: bands\nclassification_type: multiclass\ndefault_threshold: 0.9\nreview_band: 0.6\n",
        "strict.yaml": "version: strict\ndefault_threshold: 1.0\nreview_band: 0.0\nno_tag_passes: rejected\n",
        "open.yaml": "version: open\ndefault_threshold: 0.0\n",
    }
    outcomes = set()
    for file, text in policies.items():
        (tmp_path / file).write_text(text)
        policy = load_policy(file, tmp_path)
        for image in images:
            result, predicted = published.run("predict", "--spec", spec, image, "--no-store", "--policy", file)
            assert result.exit_code == 0, result.stderr
            scores = {p["tag"]: p["probability"] for p in predicted["predictions"]}
            expected = decide(policy, scores).to_dict()
            assert {k: predicted[k] for k in ("outcome", "tags", "reasons")} == expected
            assert predicted["policy"] == {"version": policy.version, "sha256": policy.sha256}
            assert predicted["passing"] == [r["tag"] for r in expected["reasons"] if r["code"] == "tag_passes"]
            outcomes.add(predicted["outcome"])
    assert {"rejected", "accepted"} <= outcomes   # strict rejects everything, open accepts everything


@pytest.mark.emulator
@pytest.mark.azurite
@pytest.mark.slow
def test_predict_without_a_policy_decides_with_the_specs_thresholds(published, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    beach = next(i for i in holdout_images(published) if "/beach/" in i)
    result, predicted = published.run("predict", "--spec", str(published.spec_path), beach, "--no-store")
    assert result.exit_code == 0, result.stderr
    top = predicted["predictions"][0]
    assert top["threshold"] == 0.6   # the spec's beach threshold; others 0.5
    assert all(p["threshold"] == 0.5 for p in predicted["predictions"] if p["tag"] != "beach")
    assert predicted["passing"] == ([top["tag"]] if top["probability"] >= top["threshold"] else [])
    assert predicted["outcome"] == ("accepted" if predicted["passing"] else "review")
    result, _ = published.run("predict", "--spec", str(published.spec_path), beach, "--policy", "x.yaml",
                              "--threshold", "0.5")
    assert result.exit_code == 2


@pytest.mark.emulator
@pytest.mark.azurite
@pytest.mark.slow
@pytest.mark.parametrize(("api", "bands"), [
    ("computer-vision", "moderation: {adult: {reject_above: 0.7, review_from: 0.4}}\n"),
    ("content-safety", "moderation: {Sexual: {reject_from: 4, review_from: 2}}\n"),
])
def test_predict_with_a_policy_applies_its_moderation_bands_with_the_configured_api(published, local_cv, tmp_path,
                                                                                    monkeypatch, api, bands):
    import dataclasses

    from devkit import moderation_scenes

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mod.yaml").write_text(f"version: mod\ndefault_threshold: 0.0\n{bands}")
    world = dataclasses.replace(published, env={**published.env, "VISION_MODERATION_ENDPOINT": local_cv.endpoint,
                                                "VISION_MODERATION_KEY": local_cv.prediction_key,
                                                "CVOPS_MODERATION_API": api})
    outcomes = {}
    for band in moderation_scenes.BANDS:
        (tmp_path / f"{band}.jpg").write_bytes(moderation_scenes.generate("adult", band))
        result, predicted = world.run("predict", "--spec", str(published.spec_path), f"{band}.jpg", "--no-store",
                                      "--policy", "mod.yaml")
        assert result.exit_code == 0, result.stderr
        assert predicted["moderation"]["api"] == api
        outcomes[band] = predicted["outcome"]
    assert outcomes == {"pass": "accepted", "review": "review", "reject": "rejected"}
    (tmp_path / "other.yaml").write_text("version: other\nmoderation: {gore: {review_from: 0.4}}\n")
    result, _ = world.run("predict", "--spec", str(published.spec_path), "pass.jpg", "--policy", "other.yaml")
    assert (result.exit_code == 0) == (api == "computer-vision")

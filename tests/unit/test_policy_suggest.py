"""pipelines.policy_suggest: an evaluation with numbers small enough to check by hand becomes a valid, commented
routing policy; the policy routes the evaluated images as its comments say (through functions.policy.decide)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from cvops.errors import ConfigurationError
from functions.policy import decide, load_policy, parse_policy
from pipelines.metrics import evaluate_scores, threshold_sweep
from pipelines.policy_suggest import (
    Review,
    Target,
    evidence_from,
    review_from,
    service_evidence,
    spec_policy,
    suggest,
    target_from,
)
from pipelines.spec import parse

REPO = Path(__file__).resolve().parents[2]

# Six scored images per tag, highest score first, (score, has the tag).
# beach, accepted from a score:  0.95 0.90 0.80 0.70 0.6123 0.30
#   precision (hits/accepted):   1/1  2/2  2/3  3/4  4/5    4/6    -> precision >= 0.8 with the most found: >= 0.6123
# forest:                        0.90 0.85 0.75 0.50 0.40   0.20
#   precision:                   1/1  1/2  2/3  2/4  3/5    3/6    -> >= 0.8 only at 0.9; >= 0.6 finds all 3 at 0.4
# city (its top score is a miss):0.97 0.60 0.55 0.50 0.30   0.10
#   precision:                   0/1  1/2  1/3  2/4  2/5    2/6    -> 0.8 is never reached; best 0.5, most found at 0.5
BEACH = [(0.95, 1), (0.90, 1), (0.80, 0), (0.70, 1), (0.6123, 1), (0.30, 0)]
FOREST = [(0.90, 1), (0.85, 0), (0.75, 1), (0.50, 0), (0.40, 1), (0.20, 0)]
CITY = [(0.97, 0), (0.60, 1), (0.55, 0), (0.50, 1), (0.30, 0), (0.10, 0)]
TAGS = ["beach", "forest", "city"]
SCORES = np.array([[b[0], f[0], c[0]] for b, f, c in zip(BEACH, FOREST, CITY, strict=True)])
LABELS = np.array([[b[1], f[1], c[1]] for b, f, c in zip(BEACH, FOREST, CITY, strict=True)])


def spec(classification_type: str = "Multilabel", **evaluation: float):
    return parse({"project": {"name": "shop", "classification_type": classification_type, "domain": "General"},
                  "tags": [{"name": "beach"}, {"name": "forest", "threshold": 0.7}, {"name": "city"},
                           {"name": "mountain", "threshold": 0.65}],
                  "evaluation": {"threshold": 0.5, **evaluation},
                  "gates": {"min_precision": 0.75}})


def said(text: str) -> str:
    """The file's comments as one line (long ones are wrapped)."""
    return " ".join(line.strip().lstrip("#").strip() for line in text.splitlines() if line.strip().startswith("#"))


def evaluation() -> dict:
    """What `cvops evaluate --report` writes, read back from JSON."""
    ev = evaluate_scores(LABELS, SCORES, TAGS, 0.5, False).to_dict()
    return json.loads(json.dumps({**ev, "holdout_source": "az://holdout/shop/", "iteration": "Iteration 2",
                                  "project": "shop"}))


def test_six_scored_images_per_tag_give_the_thresholds_a_person_checks_by_hand():
    s = suggest(spec(), evidence_from(evaluation()), Target("precision", 0.8), Review(target=0.6))
    tags = s.policy["tags"]
    # beach: >= 0.6123 accepts 5 images, 4 of them beach (0.8), all 4 found; 0.61 accepts the same images.
    assert tags["beach"] == {"threshold": 0.61, "review_band": 0.0}
    # forest: only >= 0.9 reaches 0.8; the band reaches down to 0.4, where precision is 3/5 = 0.6.
    assert tags["forest"] == {"threshold": 0.9, "review_band": 0.5}
    # city: 0.8 is never reached: the best precision (2/4 at 0.5) is used, and said.
    assert tags["city"] == {"threshold": 0.5, "review_band": 0.0}
    # mountain: not in the evaluation: the spec's own threshold.
    assert tags["mountain"] == {"threshold": 0.65, "review_band": 0.1}
    assert s.policy["version"] == "shop-iteration-2"
    assert (s.policy["classification_type"], s.policy["default_threshold"]) == ("multilabel", 0.5)


def test_the_file_comments_hold_the_numbers_behind_each_threshold():
    text = suggest(spec(), evidence_from(evaluation()), Target("precision", 0.8), Review(target=0.6)).text
    assert "# beach: from 0.61 precision 0.800 (4 of 5), recall 1.000 (4 of 4); target precision 0.8 met" in text
    assert "#   review band 0.5: from 0.4 precision 0.600 (3 of 5), recall 1.000 (3 of 3)" in text
    assert "Measured on: holdout az://holdout/shop/ (6 images)" in text


def test_an_unmet_target_is_said_in_the_file_and_in_the_warnings():
    s = suggest(spec(), evidence_from(evaluation()), Target("precision", 0.8), Review(target=0.6))
    assert "# Target NOT met or not measured for: city, mountain" in s.text
    assert "target precision 0.8 NOT met: the best precision measured is 0.500, at this threshold" in said(s.text)
    assert [c.tag for c in s.unmet] == ["city", "mountain"]
    assert s.warnings()[0].startswith("city: target precision 0.8 NOT met")
    assert "not measured" in s.warnings()[1] and "0.65" in s.warnings()[1]


def test_the_yaml_validates_and_round_trips_through_load_policy(tmp_path):
    s = suggest(spec(), evidence_from(evaluation()), Target("precision", 0.8), Review(target=0.6))
    (tmp_path / "policy.yaml").write_text(s.text)
    policy = load_policy("policy.yaml", tmp_path)
    assert policy.version == "shop-iteration-2" and policy.classification_type == "multilabel"
    assert dict(policy.thresholds) == {t: r["threshold"] for t, r in s.policy["tags"].items()}
    assert dict(policy.review_bands) == {t: r["review_band"] for t, r in s.policy["tags"].items()}


def test_the_policy_routes_the_evaluated_images_as_its_comments_count():
    s = suggest(spec(), evidence_from(evaluation()), Target("precision", 0.8), Review(target=0.6))
    policy = parse_policy(dict(s.policy))
    accepted = {t: [] for t in TAGS}
    for scores, labels in zip(SCORES, LABELS, strict=True):
        decision = decide(policy, dict(zip(TAGS, scores.tolist(), strict=True)))
        for reason in decision.reasons:
            if reason.code == "tag_passes":
                accepted[reason.tag].append(int(labels[TAGS.index(reason.tag)]))
    assert (sum(accepted["beach"]), len(accepted["beach"])) == (4, 5)   # "(4 of 5)"
    assert (sum(accepted["forest"]), len(accepted["forest"])) == (1, 1)
    assert (sum(accepted["city"]), len(accepted["city"])) == (2, 4)


def test_the_threshold_accepts_the_same_images_as_evaluates_recommendation():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(40, 3))
    scores = np.clip(y * 0.35 + rng.random((40, 3)) * 0.65, 0, 1)
    ev = json.loads(json.dumps(evaluate_scores(y, scores, TAGS, 0.5, False).to_dict()))
    for target in (Target("precision", 0.85), Target("recall", 0.9)):
        s = suggest(spec(), evidence_from(ev), target)
        sweep = threshold_sweep(y, scores, tag_names=TAGS, **{f"target_{target.metric}": target.value})
        for j, tag in enumerate(TAGS):
            written, recommended = s.policy["tags"][tag]["threshold"], sweep[tag]["recommended_threshold"]
            assert ((scores[:, j] >= written) == (scores[:, j] >= recommended)).all(), (tag, written, recommended)
            assert len(str(written)) <= len(str(recommended))


def test_a_recall_target_with_a_review_recall_reaches_further_down():
    s = suggest(spec(), evidence_from(evaluation()), Target("recall", 0.6), Review(target=1.0))
    # forest: recall 0.6 is first reached at 0.75 (2 of 3 found); all 3 are found from 0.4, so the band is 0.35.
    assert s.policy["tags"]["forest"] == {"threshold": 0.75, "review_band": 0.35}
    assert s.policy["tags"]["beach"]["threshold"] == 0.7   # 3 of 4 found from 0.70
    assert all(c.met for c in s.choices if c.at is not None)


def test_a_fixed_review_band_applies_to_every_tag():
    s = suggest(spec(), evidence_from(evaluation()), Target("precision", 0.8), Review(width=0.15))
    assert {r["review_band"] for r in s.policy["tags"].values()} == {0.15}
    assert s.policy["review_band"] == 0.15


def test_a_review_target_on_the_wrong_side_of_the_target_is_refused():
    with pytest.raises(ConfigurationError, match=r"--review-precision 0\.9 must be below the target precision 0\.8"):
        suggest(spec(), evidence_from(evaluation()), Target("precision", 0.8), Review(target=0.9))
    with pytest.raises(ConfigurationError, match=r"--review-recall 0\.5 must be above the target recall 0\.9"):
        suggest(spec(), evidence_from(evaluation()), Target("recall", 0.9), Review(target=0.5))


def test_the_target_comes_from_an_option_else_the_specs_evaluation_else_its_gates():
    assert target_from(spec(target_recall=0.9), precision=0.7) == Target("precision", 0.7, "--target-precision")
    assert target_from(spec(target_recall=0.9)) == Target("recall", 0.9, "spec evaluation.target_recall")
    assert target_from(spec()) == Target("precision", 0.75, "spec gates.min_precision")
    bare = parse({"project": {"name": "p", "classification_type": "Multiclass", "domain": "General"},
                  "tags": [{"name": "a"}]})
    with pytest.raises(ConfigurationError, match="no target"):
        target_from(bare)


def test_evaluate_json_without_a_holdout_uses_the_services_numbers_at_its_threshold():
    document = {"ok": True, "iteration": {"id": "i", "name": "Iteration 4"}, "holdout": None,
                "service": {"threshold": 0.5, "precision": 0.9, "recall": 0.8, "mean_average_precision": 0.9,
                            "tags": [{"tag": "beach", "precision": 0.95, "recall": 0.7, "average_precision": 0.9},
                                     {"tag": "forest", "precision": 0.6, "recall": 0.9, "average_precision": 0.8}]}}
    s = suggest(spec(), evidence_from(document), Target("precision", 0.9))
    assert s.policy["tags"]["beach"]["threshold"] == 0.5 and s.choices[0].met
    assert s.policy["tags"]["forest"]["threshold"] == 0.5 and not s.choices[1].met
    assert "service (cross-validation on the training images) at threshold 0.5" in s.text
    assert s.policy["version"] == "shop-iteration-4"


def test_the_services_numbers_at_several_thresholds_are_a_curve():
    perfs = [{"threshold": t, "tags": [{"tag": "beach", "precision": p, "recall": r}]}
             for t, p, r in ((0.3, 0.6, 1.0), (0.5, 0.8, 0.9), (0.7, 0.95, 0.6), (0.9, 1.0, 0.2))]
    s = suggest(spec(), service_evidence(perfs, {"beach": 40}), Target("precision", 0.9), Review(target=0.75))
    assert s.policy["tags"]["beach"] == {"threshold": 0.7, "review_band": 0.2}
    assert "precision 0.950, recall 0.600 (support 40)" in s.text


def test_tag_names_yaml_would_misread_are_quoted_and_read_back():
    odd = ["yes", "a: b", "#1", "null", "0.5", "café"]
    ev = json.loads(json.dumps(evaluate_scores(LABELS, SCORES, odd[:3], 0.5, False).to_dict()))
    sp = parse({"project": {"name": "p", "classification_type": "Multilabel", "domain": "General"},
                "tags": [{"name": n} for n in odd], "evaluation": {"target_recall": 0.5}})
    s = suggest(sp, evidence_from(ev), target_from(sp))
    assert set(s.policy["tags"]) == set(odd)   # suggest itself reads its text back and compares


def test_moderation_bands_are_copied_from_a_policy():
    shipped = load_policy("policy.yaml", REPO)
    s = suggest(spec(), evidence_from(evaluation()), Target("precision", 0.8), moderation=shipped)
    assert s.policy["moderation"] == {"adult": {"reject_above": 0.7, "review_from": 0.4}, "racy": {"review_from": 0.6},
                                      "gore": {"reject_above": 0.7, "review_from": 0.4}}


def test_a_document_with_no_per_tag_numbers_is_refused_naming_it():
    with pytest.raises(ConfigurationError, match="holds no per-tag numbers"):
        evidence_from({"n_images": 3})
    with pytest.raises(ConfigurationError, match="not a number from 0 to 1"):
        evidence_from({"tags": [{"tag": "a", "threshold": 0.5, "precision": 1.5, "recall": 0.2}]})


def test_the_specs_thresholds_as_a_policy_decide_as_the_old_passing_rule_did():
    """Multilabel: every tag at or above its threshold passes; no review band; nothing passes: review."""
    policy = spec_policy(spec())
    rng = random.Random(5)
    for _ in range(200):
        scores = {t: round(rng.random(), 2) for t in ("beach", "forest", "city", "mountain")}
        decision = decide(policy, scores)
        own = {"forest": 0.7, "mountain": 0.65}
        passing = sorted(t for t, p in scores.items() if p >= own.get(t, 0.5))
        assert sorted(decision.tags) == passing
        assert decision.outcome == ("accepted" if passing else "review")


def test_one_threshold_for_every_tag_overrides_the_spec():
    policy = spec_policy(spec("Multiclass"), threshold=0.3)
    assert (policy.classification_type, policy.default_threshold, dict(policy.thresholds)) == ("multiclass", 0.3, {})
    assert spec_policy(None, classification_type="Multilabel").classification_type == "multilabel"


def test_service_numbers_with_no_tags_keep_every_spec_threshold_and_say_so():
    document = {"iteration": {"name": "Iteration 1"}, "holdout": None,
                "service": {"threshold": 0.5, "precision": 0, "recall": 0, "mean_average_precision": 0, "tags": []}}
    s = suggest(spec(), evidence_from(document), Target("precision", 0.9))
    assert {t: r["threshold"] for t, r in s.policy["tags"].items()} == {
        "beach": 0.5, "forest": 0.7, "city": 0.5, "mountain": 0.65}
    assert "with no per-tag numbers" in s.text and len(s.unmet) == 4


def test_the_review_rule_is_one_option_and_matches_the_targets_metric():
    precision = Target("precision", 0.9)
    assert review_from(precision) == Review(width=0.1)   # the policy's own default band
    assert review_from(precision, precision=0.7) == Review(target=0.7)
    assert review_from(Target("recall", 0.9), recall=0.99) == Review(target=0.99)
    with pytest.raises(ConfigurationError, match="give one of --review-band, --review-precision, not several"):
        review_from(precision, width=0.1, precision=0.7)
    with pytest.raises(ConfigurationError, match="--review-recall goes with a recall target"):
        review_from(precision, recall=0.99)


def test_decide_accepts_and_bands_exactly_the_evaluated_images_the_chosen_points_count():
    """On random two-decimal scores (so scores equal their short decimals, the float edge of threshold - band):
    per tag, decide() accepts exactly the images at or above the chosen score and bands exactly those from the
    review floor's score up."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        y = rng.integers(0, 2, size=(30, 3))
        scores = np.round(np.clip(y * 0.3 + rng.random((30, 3)) * 0.7, 0, 1), 2)
        ev = json.loads(json.dumps(evaluate_scores(y, scores, TAGS, 0.5, False).to_dict()))
        s = suggest(spec(), evidence_from(ev), Target("precision", 0.7), Review(target=0.4))
        policy = parse_policy(dict(s.policy))
        for row in scores:
            codes = {r.tag: r.code for r in decide(policy, dict(zip(TAGS, row.tolist(), strict=True))).reasons}
            for j, tag in enumerate(TAGS):
                choice = next(c for c in s.choices if c.tag == tag)
                floor = choice.floor_at.threshold if choice.floor_at else choice.at.threshold
                expected = ("tag_passes" if row[j] >= choice.at.threshold else
                            "review_band" if row[j] >= floor else None)
                assert codes.get(tag) == expected, (tag, row[j], choice)

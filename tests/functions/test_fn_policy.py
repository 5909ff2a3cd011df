"""The routing policy: loading with clear errors, and decisions as plain data for each case the issue names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvops.errors import ConfigurationError
from functions.policy import Decision, decide, load_policy, parse_policy

REPO = Path(__file__).resolve().parents[2]


def policy(**fields):
    return parse_policy({"version": "t", **fields})


def test_the_shipped_policy_is_valid_and_fingerprinted():
    shipped = load_policy("policy.yaml", REPO)
    assert shipped.version == "default-1"
    assert len(shipped.sha256) == 64
    assert shipped.moderation["adult"].reject_above == 0.7


def test_inline_json_is_accepted():
    loaded = load_policy(json.dumps({"version": "inline", "default_threshold": 0.6}), REPO)
    assert loaded.default_threshold == 0.6


def test_the_fingerprint_changes_with_the_content_not_the_key_order():
    a = parse_policy({"version": "x", "default_threshold": 0.5, "review_band": 0.1})
    b = parse_policy({"review_band": 0.1, "default_threshold": 0.5, "version": "x"})
    c = parse_policy({"version": "x", "default_threshold": 0.55, "review_band": 0.1})
    assert a.sha256 == b.sha256 != c.sha256


def test_every_schema_problem_is_named_with_its_place_and_the_setting():
    with pytest.raises(ConfigurationError) as caught:
        parse_policy({"version": "x", "default_threshold": 1.5, "tags": {"cat": {"treshold": 0.8}},
                      "classification_type": "multi"})
    message = str(caught.value)
    assert caught.value.setting == "CVOPS_POLICY"
    assert "default_threshold" in message and "1.5" in message
    assert "tags.cat" in message and "treshold" in message
    assert "classification_type" in message


def test_a_policy_without_version_is_refused():
    with pytest.raises(ConfigurationError, match="version"):
        parse_policy({"default_threshold": 0.5})


def test_an_empty_moderation_review_band_is_refused():
    with pytest.raises(ConfigurationError, match=r"moderation\.adult: review_from 0\.8 is above reject_above 0\.7"):
        parse_policy({"version": "x", "moderation": {"adult": {"reject_above": 0.7, "review_from": 0.8}}})


def test_a_missing_policy_file_names_the_setting_and_the_path(tmp_path):
    with pytest.raises(ConfigurationError, match=r"CVOPS_POLICY: cannot read the policy file .*nope\.yaml"):
        load_policy("nope.yaml", tmp_path)


def test_a_policy_file_with_bad_yaml_is_refused(tmp_path):
    (tmp_path / "p.yaml").write_text("version: [unclosed\n")
    with pytest.raises(ConfigurationError, match="does not parse"):
        load_policy("p.yaml", tmp_path)


def test_broken_inline_json_is_refused():
    with pytest.raises(ConfigurationError, match="inline JSON that does not parse"):
        load_policy('{"version": ', REPO)


def test_multiclass_accepts_the_top_tag_at_the_default_threshold():
    decision = decide(policy(), {"cat": 0.5, "dog": 0.3})
    assert decision.outcome == "accepted" and decision.tags == ("cat",)
    assert decision.reasons[0].code == "tag_passes"


def test_a_retail_tag_needs_its_own_higher_threshold():
    retail = policy(tags={"cereal": {"threshold": 0.8}}, review_band=0.1)
    assert decide(retail, {"cereal": 0.85}).outcome == "accepted"
    below = decide(retail, {"cereal": 0.75})
    assert below.outcome == "review" and below.reasons[0].code == "review_band"
    assert decide(retail, {"cereal": 0.6}).outcome == "review"  # no_tag_passes default
    assert decide(retail, {"cereal": 0.6}).reasons[0].code == "no_tag_passes"


def test_a_high_recall_medical_tag_is_accepted_at_point_three():
    medical = policy(tags={"nodule": {"threshold": 0.3, "review_band": 0.2}})
    assert decide(medical, {"nodule": 0.34, "clear": 0.33, "other": 0.33}).tags == ("nodule",)
    assert decide(medical, {"nodule": 0.31, "clear": 0.69}).tags == ("clear",)  # multiclass: only the top tag counts
    multilabel = policy(classification_type="multilabel", tags={"nodule": {"threshold": 0.3, "review_band": 0.2}})
    decision = decide(multilabel, {"nodule": 0.31, "clear": 0.2})
    assert decision.outcome == "accepted" and decision.tags == ("nodule",)
    assert decide(multilabel, {"nodule": 0.15, "clear": 0.2}).outcome == "review"  # 0.15 is in [0.1, 0.3)


def test_no_tag_passing_can_reject_by_policy():
    strict = policy(no_tag_passes="rejected", review_band=0.0)
    assert decide(strict, {"cat": 0.2}).outcome == "rejected"
    assert decide(strict, {}).outcome == "rejected"


def test_multilabel_accepts_every_tag_over_its_threshold():
    multilabel = policy(classification_type="multilabel", review_band=0.0, tags={"forest": {"threshold": 0.7}})
    decision = decide(multilabel, {"beach": 0.9, "forest": 0.75, "city": 0.49})
    assert decision.outcome == "accepted" and decision.tags == ("beach", "forest")


def test_multilabel_with_an_uncertain_tag_goes_to_review_with_suggestions():
    multilabel = policy(classification_type="multilabel", review_band=0.1)
    decision = decide(multilabel, {"beach": 0.9, "forest": 0.45, "city": 0.1})
    assert decision.outcome == "review" and decision.tags == ("beach", "forest")


def test_moderation_rejects_above_and_reviews_in_the_band():
    moderated = policy(moderation={"adult": {"reject_above": 0.7, "review_from": 0.4}})
    rejected = decide(moderated, {"cat": 0.99}, {"adult": 0.71, "racy": 0.9, "gore": 0.0})
    assert rejected.outcome == "rejected" and rejected.tags == ()
    assert rejected.reasons[0].code == "moderation_reject"
    review = decide(moderated, {"cat": 0.99}, {"adult": 0.4})
    assert review.outcome == "review" and review.tags == ("cat",)
    assert decide(moderated, {"cat": 0.99}, {"adult": 0.39}).outcome == "accepted"


def test_scores_for_bands_the_policy_does_not_set_are_ignored():
    moderated = policy(moderation={"gore": {"reject_above": 0.5}})
    assert decide(moderated, {"cat": 0.99}, {"adult": 0.99, "gore": 0.1}).outcome == "accepted"


def test_a_decision_round_trips_through_plain_data():
    decision = decide(policy(moderation={"adult": {"review_from": 0.1}}), {"cat": 0.9}, {"adult": 0.2})
    data = json.loads(json.dumps(decision.to_dict()))
    assert Decision.from_dict(data) == decision


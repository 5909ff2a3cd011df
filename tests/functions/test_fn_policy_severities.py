"""The policy on Content Safety's scale: severity bands (0, 2, 4, 6), refused when the configured API cannot produce
them, and decided with the same precedence as scores (a rejection anywhere beats a review anywhere)."""

from __future__ import annotations

import pytest

from cvops.errors import ConfigurationError
from functions.policy import SeverityBand, decide, parse_policy

BANDS = {"Sexual": {"reject_from": 4, "review_from": 2}, "Violence": {"reject_from": 6, "review_from": 2}}


def policy(bands=BANDS, api="content-safety"):
    return parse_policy({"version": "cs", "moderation": bands}, moderation_api=api)


def test_severity_bands_parse_into_severity_bands():
    assert policy().moderation == {"Sexual": SeverityBand(4, 2), "Violence": SeverityBand(6, 2)}
    assert policy().moderation_api == "content-safety"


def test_a_rejection_in_one_category_is_not_undone_by_a_review_in_a_later_one():
    decision = decide(policy(), {"beach": 0.9}, {"Sexual": 6, "Violence": 2, "Hate": 0, "SelfHarm": 0})
    assert decision.outcome == "rejected"
    assert [r.code for r in decision.reasons] == ["moderation_reject", "moderation_review"]


def test_a_low_severity_reviews_an_accepted_image_and_safe_passes():
    assert decide(policy(), {"beach": 0.9}, {"Sexual": 2, "Violence": 0}).outcome == "review"
    assert decide(policy(), {"beach": 0.9}, {"Sexual": 0, "Violence": 4}).outcome == "review"
    assert decide(policy(), {"beach": 0.9}, {"Sexual": 0, "Violence": 0}).outcome == "accepted"


def test_a_severity_that_is_not_a_whole_number_sends_the_image_to_a_person():
    decision = decide(policy(), {"beach": 0.9}, {"Sexual": float("nan"), "Violence": 0})
    assert decision.outcome == "review" and decision.reasons[0].code == "invalid_score"


@pytest.mark.parametrize(("bands", "api", "named"), [
    ({"adult": {"reject_above": 0.7}}, "content-safety", "moderation.adult"),
    ({"Sexual": {"reject_from": 4}}, "computer-vision", "moderation.Sexual"),
    ({"Sexual": {"reject_from": 3}}, "content-safety", "moderation.Sexual.reject_from"),
    ({"Sexual": {"review_from": 0}}, "content-safety", "moderation.Sexual.review_from"),
    ({"Violence": {"reject_from": 4, "review_from": 4}}, "content-safety", "moderation.Violence"),
    ({"Sexual": {"reject_from": 4}, "gore": {"review_from": 0.4}}, None, "both scales"),
])
def test_a_band_the_configured_api_cannot_produce_is_refused_naming_the_field(bands, api, named):
    with pytest.raises(ConfigurationError) as caught:
        policy(bands, api)
    assert named in str(caught.value) and caught.value.setting == "CVOPS_POLICY"

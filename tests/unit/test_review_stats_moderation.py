"""cvops review stats per moderation band ("tune the thresholds from user feedback"), on sets counted by hand: how
often people agreed with moderation's decision to stop an image, and where the band's limits could move."""

from __future__ import annotations

import pytest

from pipelines.review.stats import band_stats, moderation_observations, observations, review_stats


def reviewed(name, value, *, blocked, limit=0.4, band="review", api="computer-vision", codes=("moderation_review",)):
    """A decision on an image moderation sent to review (the classifier's tag passed: clean 0.95)."""
    return {"decision": "rejected" if blocked else "accepted", "tags": [] if blocked else ["clean"],
            "classification_type": "multiclass", "agreed": not blocked,
            "model": {"top_tag": "clean", "top_score": 0.95, "threshold": None, "suggested": [],
                      "scores": [["clean", 0.95]], "reason_codes": list(codes), "moderation_api": api,
                      "moderation": [{"name": name, "band": band, "value": value, "limit": limit}]}}


# adult review band (0.4 up to 0.7), values low to high: people accept the five lowest, then block the six highest
# but one (0.62 accepted).
ADULT = ([reviewed("adult", v, blocked=False) for v in (0.41, 0.43, 0.45, 0.47, 0.49)]
         + [reviewed("adult", 0.55, blocked=True), reviewed("adult", 0.58, blocked=True),
            reviewed("adult", 0.62, blocked=False), reviewed("adult", 0.64, blocked=True),
            reviewed("adult", 0.66, blocked=True), reviewed("adult", 0.69, blocked=True)])


def test_agreement_is_the_share_of_reviewed_images_people_blocked():
    (adult,) = band_stats(moderation_observations(ADULT), target=0.9, min_support=4)
    assert (adult.name, adult.scale, adult.reviewed, adult.blocked, adult.accepted) == ("adult", "score", 11, 5, 6)
    assert adult.agreement == pytest.approx(5 / 11)
    assert (adult.review_from, adult.min_value, adult.max_value) == (0.4, 0.41, 0.69)


def test_block_band_could_start_where_people_block_and_review_band_above_where_they_accept():
    (adult,) = band_stats(moderation_observations(ADULT), target=0.8, min_support=4)
    # From 0.64 up: 3 of 3 (too few); from 0.62: 3 of 4 = 0.75; from 0.58: 4 of 5; from 0.55: 5 of 6; 0.49: 5 of 7.
    assert adult.block_from == 0.55
    assert adult.suggested_reject == 0.5          # the shortest decimal in [0.49, 0.55): reject_above 0.5 blocks 0.55+
    # Below the block band only: up to 0.47 (4 reviews) and 0.49 (5) all accepted.
    assert adult.pass_up_to == 0.49
    assert adult.suggested_review_from == 0.5     # shortest in (0.49, 0.55]: 0.55 is still stopped
    assert "block without a person from there (reject_above: 0.5)" in adult.note
    assert "start the review band above it (review_from: 0.5, now 0.4)" in adult.note


def test_where_people_mostly_accept_the_review_band_could_start_higher():
    (adult,) = band_stats(moderation_observations(ADULT), target=0.95, min_support=4)
    # No cut from the top has 95% blocked with 4 reviews (0.64 up: 3 of 3; 0.62 up: 3 of 4); up to 0.49: 5 of 5.
    assert (adult.block_from, adult.pass_up_to, adult.suggested_review_from) == (None, 0.49, 0.5)


def test_few_reviews_keep_the_band_and_say_why():
    (adult,) = band_stats(moderation_observations(ADULT[:3]), target=0.95, min_support=10)
    assert adult.block_from is None and adult.pass_up_to is None
    assert adult.note == ("3 reviews, people blocked 0 (0%); no value has 10 or more reviews agreeing 95% of the time "
                          "either way; keep the band")


def test_severities_suggest_whole_severities():
    decisions = ([reviewed("Sexual", 2, blocked=True, limit=2, api="content-safety") for _ in range(9)]
                 + [reviewed("Sexual", 2, blocked=False, limit=2, api="content-safety")])
    (sexual,) = band_stats(moderation_observations(decisions), target=0.9, min_support=10)
    assert (sexual.scale, sexual.api, sexual.block_from, sexual.suggested_reject) == ("severity", "content-safety", 2, 2)
    assert "block without a person from there (reject_from: 2)" in sexual.note


def test_moderation_reviews_are_no_evidence_about_the_tags_review_band_but_appear_in_the_report():
    report = review_stats(ADULT, target=0.9, min_support=4)
    assert observations(ADULT) == [] and report["tags"] == []
    assert [b["name"] for b in report["moderation"]] == ["adult"]
    both = reviewed("adult", 0.5, blocked=True, codes=("moderation_review", "review_band"))
    assert [o.tag for o in observations([both])] == ["clean"]     # the tag was in its own review band too


def test_policy_suggest_moves_the_copied_bands_where_the_reviews_support_it_and_says_so_in_the_file():
    from pathlib import Path

    from functions.policy import load_policy, parse_policy
    from pipelines.policy_suggest import Target, evidence_from, suggest, tune_moderation
    from tests.unit.test_policy_suggest import evaluation, spec

    repo = Path(__file__).resolve().parents[2]
    report = review_stats(ADULT, target=0.8, min_support=4)
    shipped = load_policy("policy.yaml", repo)
    s = suggest(spec(), evidence_from(evaluation()), Target("precision", 0.8), moderation=shipped,
                moderation_reviews=report["moderation"])

    assert s.policy["moderation"]["adult"] == {"reject_above": 0.5, "review_from": 0.5}
    assert s.policy["moderation"]["gore"] == {"reject_above": 0.7, "review_from": 0.4}     # no reviews: kept
    assert "adult: reject_above 0.7 -> 0.5, review_from 0.4 -> 0.5" in " ".join(s.text.split())
    assert "gore: no reviews of images this band stopped; kept" in s.text
    parse_policy(s.policy, moderation_api="computer-vision")

    # A suggestion that would empty the band is not taken: review_from 0.8 above reject_above 0.7.
    tuned, notes = tune_moderation({"adult": {"reject_above": 0.7, "review_from": 0.4}},
                                   [{"name": "adult", "scale": "score", "suggested_reject": None,
                                     "suggested_review_from": 0.8, "note": "n"}])
    assert tuned["adult"] == {"reject_above": 0.7, "review_from": 0.4} and notes == ("adult: kept (n)",)

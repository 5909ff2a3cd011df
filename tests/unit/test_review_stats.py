"""cvops review stats on sets whose answers are counted by hand."""

from __future__ import annotations

import pytest

from pipelines.review.stats import observations, review_stats, shortest_threshold, tag_stats


def decision(top, score, human, *, rejected=False, kind="multiclass", suggested=(), scores=None, threshold=0.8):
    return {"decision": "rejected" if rejected else "accepted", "tags": [] if rejected else list(human),
            "classification_type": kind, "agreed": (not rejected) and top in human,
            "model": {"top_tag": top, "top_score": score, "threshold": threshold, "suggested": list(suggested),
                      "scores": [[t, s] for t, s in (scores or {top: score}).items()]}}


# beach, scores high to low: agree x4, then disagree (city), agree, disagree (rejected), disagree (forest).
BEACH = [decision("beach", 0.75, ["beach"]), decision("beach", 0.74, ["beach"]), decision("beach", 0.73, ["beach"]),
         decision("beach", 0.72, ["beach"]), decision("beach", 0.71, ["city"]), decision("beach", 0.70, ["beach"]),
         decision("beach", 0.65, [], rejected=True), decision("beach", 0.60, ["forest"])]
# city: 3 reviews, 1 agreed.
CITY = [decision("city", 0.7, ["city"]), decision("city", 0.68, ["beach"]), decision("city", 0.66, ["forest"])]


def test_agreement_counts_per_tag():
    beach, city = tag_stats(observations(BEACH + CITY), target=0.95, min_support=4)
    assert (beach.tag, beach.reviewed, beach.agreed, beach.rejected, beach.other_tag) == ("beach", 8, 5, 1, 2)
    assert beach.agreement == pytest.approx(5 / 8)
    assert (beach.min_score, beach.max_score, beach.threshold) == (0.60, 0.75, 0.8)
    assert (city.reviewed, city.agreed, city.other_tag) == (3, 1, 2)


def test_the_threshold_moves_down_to_where_people_agree_at_the_target():
    # At 0.95: cuts 0.75..0.72 agree 4/4, but only 0.72 has 4 reviews: down to 0.72 (agreement 1.0 of 4).
    beach = tag_stats(observations(BEACH), target=0.95, min_support=4)[0]
    assert (beach.suggested, beach.suggested_agreement, beach.suggested_support) == (0.72, 1.0, 4)
    assert "could move down to 0.72 from 0.8" in beach.note
    # At 0.8: 0.71 has 4/5 = 0.8, 0.70 has 5/6 = 0.833 with all 5 agreements: down to 0.7 (shortest in (0.65, 0.70]).
    beach = tag_stats(observations(BEACH), target=0.8, min_support=4)[0]
    assert (beach.suggested, beach.suggested_support) == (0.7, 6)
    assert beach.suggested_agreement == pytest.approx(5 / 6)


def test_too_few_reviews_or_too_little_agreement_keeps_the_threshold():
    city = tag_stats(observations(CITY), target=0.95, min_support=4)[0]
    assert city.suggested is None and "keep the threshold" in city.note
    beach = tag_stats(observations(BEACH), target=0.95, min_support=5)[0]
    assert beach.suggested is None  # the first cut with 5 reviews agrees 4/5


def test_a_policy_threshold_wins_over_the_records():
    beach = tag_stats(observations(BEACH), target=0.95, min_support=4, thresholds={"beach": 0.9})[0]
    assert beach.threshold == 0.9 and "from 0.9" in beach.note


def test_multilabel_judges_each_tag_put_forward():
    ml = [decision("beach", 0.7, ["beach", "forest"], kind="multilabel", suggested=["forest"],
                   scores={"beach": 0.7, "forest": 0.6}),
          decision("beach", 0.65, ["beach"], kind="multilabel", suggested=["forest"],
                   scores={"beach": 0.65, "forest": 0.62})]
    beach, forest = tag_stats(observations(ml), min_support=1)
    assert (beach.reviewed, beach.agreed) == (2, 2)
    assert (forest.reviewed, forest.agreed, forest.min_score) == (2, 1, 0.6)
    assert forest.threshold is None


def test_totals():
    report = review_stats(BEACH + CITY, target=0.95, min_support=4)
    assert (report["decisions"], report["accepted"], report["rejected"], report["agreed_with_top_tag"]) == (11, 10, 1, 6)
    assert [t["tag"] for t in report["tags"]] == ["beach", "city"]


@pytest.mark.parametrize(("score", "below", "expected"), [(0.72, 0.71, 0.72), (0.70, 0.65, 0.7), (0.873142, 0.5, 0.8),
                                                          (0.873142, 0.87, 0.873), (0.5, None, 0.5)])
def test_shortest_threshold_keeps_the_same_images(score, below, expected):
    assert shortest_threshold(score, below) == expected

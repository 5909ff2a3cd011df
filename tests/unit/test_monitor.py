"""cvops monitor's pure core on records generated through the app's own routing and record code
(devkit/records.py): what it flags, where, and what it leaves alone."""

from __future__ import annotations

import math
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from devkit.records import Slice, generate_records
from pipelines.monitor import ALL, Aggregate, Rules, feed, ks_distance, parse_rules, psi, slice_of, summarise

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
BASELINE_DAYS = 14


def run(slices, *, days=35, every="day", by="prefix", rules=Rules(), decisions=(), seed=7):  # noqa: B008
    base, now = Aggregate(every, by), Aggregate(every, by)
    split = START + timedelta(days=BASELINE_DAYS)
    for record in generate_records(slices, start=START, days=days, seed=seed):
        (base if record["blob"]["last_modified"] < split.isoformat() else now).add(record)
    for decision in decisions:
        now.add_decision(decision)
    return summarise(now, base, rules, window={}, baseline_window={}, skipped={})


def cameras(**changes):
    return [Slice("site-a/cam-1", per_day=250),
            Slice("site-b/cam-2", camera=("Fabrikam", "X2"), per_day=250, changes=changes.get("cam2", {})),
            Slice("site-c/cam-3", camera=("Contoso", "Cam-3"), per_day=250)]


def test_a_stable_month_raises_nothing_per_day_or_per_week():
    for every in ("day", "week"):
        result = run(cameras(), every=every)
        assert result["findings"] == [] and result["ok"]
        worst = max(d["psi"] for p in result["periods"] for r in p["slices"] for d in r["drift"].values())
        assert worst < 0.2 / 2, f"noise alone came within a factor 2 of the drift rule ({worst:.3f}, per {every})"


def test_a_camera_whose_images_turn_darker_is_flagged_by_name_on_the_first_day_and_the_others_are_not():
    result = run(cameras(cam2={21: {"luminance": 70.0}}))
    drift = [f for f in result["findings"] if f["rule"] == "drift" and f["slice"] != ALL]
    assert {f["slice"] for f in drift} == {"site-b/"}
    assert min(f["period"] for f in drift) == (START + timedelta(days=21)).date().isoformat()
    assert {f["feature"] for f in drift} == {"luminance_mean"}
    first = min(drift, key=lambda f: f["period"])
    assert first["test"] == "PSI" and first["value"] > 1.0 and first["images"] == 250
    assert "site-b/" in first["message"] and "PSI" in first["message"]


def test_a_new_camera_slice_too_small_for_its_own_baseline_is_compared_with_the_whole_baseline():
    newcomer = Slice("site-d/new-cam", per_day=0, changes={20: {"per_day": 250, "luminance": 60.0}})
    result = run([*cameras(), newcomer])
    rows = [r for p in result["periods"] for r in p["slices"] if r["slice"] == "site-d/"]
    assert rows and all(r["baseline_slice"] == ALL for r in rows)
    assert any(f["slice"] == "site-d/" and f["feature"] == "luminance_mean" for f in result["findings"])


def test_by_camera_names_the_exif_camera():
    result = run(cameras(cam2={21: {"luminance": 70.0}}), by="camera", every="week")
    assert {f["slice"] for f in result["findings"] if f["slice"] != ALL} == {"Fabrikam X2"}


def test_a_slice_the_model_grows_unsure_of_doubles_its_review_share_and_is_flagged():
    result = run(cameras(cam2={28: {"confidence": 0.5}}), every="week")
    share = [f for f in result["findings"] if f["rule"] == "review_share"]
    assert share and {f["slice"] for f in share} <= {"site-b/", ALL}
    assert any(f["slice"] == "site-b/" for f in share)
    assert all(f["value"] >= 2 * max(f["baseline"], 0.01) for f in share)


def _decision(day: int, name: str, agreed: bool) -> dict:
    return {"decided_at": (START + timedelta(days=day, hours=9)).isoformat(), "agreed": agreed,
            "source": {"name": name}, "model": {"top_tag": "beach"}}


def test_falling_review_agreement_is_flagged_once_there_are_enough_reviews():
    good = [_decision(15, f"site-a/cam-1/{i}.jpg", i % 20 != 0) for i in range(40)]  # 95 %
    bad = [_decision(30, f"site-a/cam-1/{i}.jpg", i % 3 != 0) for i in range(40)]  # 67 %
    few = [_decision(22, f"site-a/cam-1/{i}.jpg", False) for i in range(10)]  # 0 %, but only 10 reviews
    result = run(cameras(), decisions=good + bad + few)
    agreement = [f for f in result["findings"] if f["rule"] == "agreement"]
    assert {(f["period"], f["slice"]) for f in agreement} == {
        ((START + timedelta(days=30)).date().isoformat(), ALL),
        ((START + timedelta(days=30)).date().isoformat(), "site-a/")}
    assert all(f["reviews"] == 40 and math.isclose(f["value"], 26 / 40, abs_tol=1e-4) for f in agreement)


def test_psi_and_ks_on_hand_checkable_histograms():
    assert psi([50, 50], [50, 50]) == 0.0
    # shares 0.5/0.5 against 0.9/0.1 with half-count smoothing over 100 and 100 images
    pb, pn = [50.5 / 101, 50.5 / 101], [90.5 / 101, 10.5 / 101]
    expected = sum((n - b) * math.log(n / b) for b, n in zip(pb, pn, strict=True))
    assert math.isclose(psi([50, 50], [90, 10]), expected, rel_tol=1e-12)
    assert math.isclose(ks_distance([50, 50], [90, 10]), 0.4, abs_tol=1e-12)
    assert psi([], []) is None and psi([0, 0], [1, 2]) is None


@pytest.mark.parametrize(("data", "words"), [
    ({"psi_abov": 0.3}, "unknown rule 'psi_abov'"),
    ({"min_images": 2.5}, "min_images must be a whole number"),
    ({"agreement_below": 1.5}, "agreement_below must be a number in [0, 1]"),
    ({"psi_above": float("nan")}, "psi_above must be a number >= 0"),
    ({"min_reviews": True}, "min_reviews must be a whole number"),
    (["psi_above"], "must be a mapping"),
])
def test_a_bad_rules_file_is_refused_naming_the_rule(data, words):
    with pytest.raises(ValueError, match=None) as caught:
        parse_rules(data, "rules.yaml")
    assert words in str(caught.value) and "rules.yaml" in str(caught.value)


def test_rules_from_a_file_replace_only_what_they_name():
    assert parse_rules({"psi_above": 0.3}, "r") == Rules(psi_above=0.3)


def test_slices_by_prefix_depth_camera_and_tag():
    record = {"blob": {"name": "eu/store-7/cam/1.jpg"}, "image": {"exif": {"make": "Canon ", "model": "EOS R5"}},
              "predictions": [{"tag": "milk", "probability": 0.9}, {"tag": "cans", "probability": 0.1}],
              "outcome": "accepted"}
    assert slice_of(record, "prefix") == "eu/"
    assert slice_of(record, "prefix", 2) == "eu/store-7/"
    assert slice_of({"blob": {"name": "flat.jpg"}}, "prefix") == "(no prefix)"
    assert slice_of(record, "camera") == "Canon EOS R5"
    assert slice_of({}, "camera") == "(no EXIF camera)"
    assert slice_of(record, "tag") == "milk"
    assert slice_of({"outcome": "quarantine"}, "tag") == "(quarantine)"


def test_memory_stays_flat_however_many_records_are_counted():
    slices = [Slice(f"cam-{i}", per_day=100) for i in range(2)]
    sizes = []
    for days in (7, 28):
        aggregate = Aggregate("week", "prefix")
        tracemalloc.start()
        feed(aggregate, generate_records(slices, start=START, days=days))
        sizes.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # 4 x the records (1,400 -> 5,600): the aggregate grows by its 3 more weeks of slices, not by the records.
    assert sizes[1] < 2 * sizes[0], sizes

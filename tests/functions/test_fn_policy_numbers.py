"""Numbers in a routing policy: NaN and infinities are refused with the field and the file named, and any policy the
loader accepts routes consistently with its own thresholds (property-based: hypothesis generates the policies)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvops.errors import ConfigurationError
from functions.policy import MODERATION_SCORES, Policy, decide, load_policy, parse_policy

NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("text, field", [
    ("version: t\nmoderation:\n  adult:\n    reject_above: .nan\n", "moderation.adult.reject_above"),
    ("version: t\nmoderation:\n  gore:\n    review_from: -.inf\n", "moderation.gore.review_from"),
    ("version: t\ndefault_threshold: .NaN\n", "default_threshold"),
    ("version: t\ntags:\n  beach:\n    threshold: .inf\n", "tags.beach.threshold"),
    ("version: t\ntags:\n  beach:\n    review_band: .nan\n", "tags.beach.review_band"),
])
def test_a_non_finite_number_in_a_policy_file_is_refused_naming_the_field_and_the_file(tmp_path, text, field):
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        load_policy(str(path), tmp_path)
    assert field in str(caught.value) and str(path) in str(caught.value)
    assert "finite" in str(caught.value)
    assert caught.value.setting == "CVOPS_POLICY"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_policies_inline_or_in_a_file_refuse_nan_and_infinities(tmp_path, literal):
    text = f'{{"version": "t", "review_band": {literal}}}'
    with pytest.raises(ConfigurationError, match=r"CVOPS_POLICY \(inline JSON\): review_band is .*not a finite"):
        load_policy(text, tmp_path)
    path = tmp_path / "policy.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"policy\.json: review_band"):
        load_policy(str(path), tmp_path)


def test_reject_above_nan_no_longer_switches_moderation_off():
    """The reproduction: ``reject_above: NaN`` loaded, and an adult score of 0.99 was accepted."""
    with pytest.raises(ConfigurationError, match=r"moderation\.adult\.reject_above"):
        parse_policy({"version": "t", "moderation": {"adult": {"reject_above": math.nan}}})
    valid = parse_policy({"version": "t", "moderation": {"adult": {"reject_above": 0.5}}})
    assert decide(valid, {"beach": 0.99}, {"adult": 0.99}).outcome == "rejected"


@pytest.mark.parametrize("bad", NON_FINITE)
def test_a_score_that_is_not_finite_never_accepts_or_passes_moderation(bad):
    """A service answering NaN must not slip past the rules (NaN compares false with every limit)."""
    policy = parse_policy({"version": "t", "moderation": {"adult": {"reject_above": 0.8, "review_from": 0.5}}})
    assert decide(policy, {"beach": 0.99}, {"adult": bad}).outcome in ("review", "rejected")
    assert decide(policy, {"beach": bad, "city": 0.9}, {"adult": 0.1}).outcome == "review"
    multilabel = parse_policy({"version": "t", "classification_type": "multilabel"})
    assert decide(multilabel, {"beach": bad, "city": 0.9}).outcome == "review"


# --- property: any numbers -> refused with a named field, or valid and consistent ----------------------------------

ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-0.5, max_value=1.5),
    st.sampled_from([0.0, 1.0, 0.5, -0.0, 1e-12, 1 - 1e-12, *NON_FINITE]),
    st.integers(min_value=-2, max_value=2),
)
TAGS = ("beach", "city", "forest")


def _band():
    return st.dictionaries(st.sampled_from(["reject_above", "review_from"]), ANY_NUMBER, min_size=1)


POLICIES = st.fixed_dictionaries(
    {"version": st.just("prop")},
    optional={
        "classification_type": st.sampled_from(["multiclass", "multilabel"]),
        "default_threshold": ANY_NUMBER,
        "review_band": ANY_NUMBER,
        "no_tag_passes": st.sampled_from(["review", "rejected"]),
        "tags": st.dictionaries(st.sampled_from(TAGS), st.dictionaries(
            st.sampled_from(["threshold", "review_band"]), ANY_NUMBER), max_size=3),
        "moderation": st.dictionaries(st.sampled_from(MODERATION_SCORES), _band(), max_size=3),
    },
)
SCORES = st.floats(min_value=0.0, max_value=1.0)
PREDICTIONS = st.dictionaries(st.sampled_from(TAGS), SCORES, max_size=3)
MODERATION = st.one_of(st.none(), st.fixed_dictionaries({name: SCORES for name in MODERATION_SCORES}))

GENERATED = {"policies": 0, "refused": 0, "valid": 0, "decisions": 0}


def _numbers(data, path=""):
    """(path, value) of every number in a policy document, paths written as the loader writes them."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _numbers(value, f"{path}.{key}" if path else key)
    elif isinstance(data, int | float) and not isinstance(data, bool):
        yield path, data


def _check_consistent(policy: Policy, predictions: dict, moderation: dict | None) -> None:
    decision = decide(policy, predictions, moderation)
    rejected_by = [n for n, band in policy.moderation.items() if moderation and band.reject_above is not None
                   and moderation[n] > band.reject_above]
    reviewed_by = [n for n, band in policy.moderation.items() if moderation and band.review_from is not None
                   and moderation[n] >= band.review_from]
    if rejected_by:
        assert decision.outcome == "rejected", (decision, rejected_by)
        return
    if decision.outcome == "accepted":
        assert not reviewed_by, (decision, reviewed_by)
        assert decision.tags, decision
        for tag in decision.tags:
            assert predictions[tag] >= policy.threshold(tag), (decision, tag)
        if policy.classification_type == "multiclass":
            top = max(predictions.values())
            assert predictions[decision.tags[0]] == top and len(decision.tags) == 1
        else:
            # every tag at or above its threshold is accepted, and none sits in its review band
            assert set(decision.tags) == {t for t, s in predictions.items() if s >= policy.threshold(t)}
    if decision.outcome == "rejected":
        assert policy.no_tag_passes == "rejected", decision
        assert not any(s >= policy.threshold(t) for t, s in predictions.items()
                       if policy.classification_type == "multilabel"), decision
    if decision.outcome == "review" and not reviewed_by:
        # review without moderation: a tag was in its band (or the no-tag rule says review)
        assert any(r.code in ("review_band", "no_tag_passes", "no_predictions") for r in decision.reasons), decision


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=POLICIES, predictions=PREDICTIONS, moderation=MODERATION)
def test_any_policy_is_refused_naming_a_field_or_routes_consistently_with_its_thresholds(document, predictions,
                                                                                          moderation):
    GENERATED["policies"] += 1
    try:
        policy = parse_policy(json.loads(json.dumps(document)), origin="policy file generated.yaml")
    except ConfigurationError as exc:
        GENERATED["refused"] += 1
        message = str(exc)
        assert "generated.yaml" in message
        bad = [p for p, v in _numbers(document) if not math.isfinite(v) or not 0 <= v <= 1]
        reversed_bands = [f"moderation.{n}" for n, b in document.get("moderation", {}).items()
                          if "reject_above" in b and "review_from" in b and b["review_from"] > b["reject_above"]]
        assert bad or reversed_bands, message  # only a wrong number or band may be refused here
        assert any(p in message for p in bad + reversed_bands), message
        return
    GENERATED["valid"] += 1
    numbers = list(_numbers(document))
    assert all(math.isfinite(v) and 0 <= v <= 1 for _, v in numbers), numbers
    for band in policy.moderation.values():
        if band.reject_above is not None and band.review_from is not None:
            assert band.review_from <= band.reject_above
    GENERATED["decisions"] += 1
    _check_consistent(policy, predictions, moderation)


def test_zz_report_how_many_policies_were_generated(capsys):
    """Prints the property's counts (run with -s to see them): the note reports them."""
    if GENERATED["policies"]:
        with capsys.disabled():
            print(f"\npolicy property: {GENERATED['policies']} policies generated, {GENERATED['refused']} refused, "
                  f"{GENERATED['valid']} valid with a decision checked")
        assert GENERATED["refused"] > 0 and GENERATED["valid"] > 0

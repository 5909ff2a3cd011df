"""pipelines.metrics: hand-computed cases, and agreement with scikit-learn on random data with ties."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_score,
    recall_score,
)

from pipelines.metrics import (
    average_precision,
    evaluate_scores,
    pr_curve,
    precision_recall_at,
    threshold_sweep,
)

# Four images, one tag: scores and labels small enough to check by hand.
Y = np.array([1, 0, 1, 0])
S = np.array([0.9, 0.8, 0.4, 0.1])


def test_precision_recall_at_threshold_by_hand() -> None:
    assert precision_recall_at(Y, S, 0.5) == (0.5, 0.5)  # predicted {0.9, 0.8}: one right, one of two found
    assert precision_recall_at(Y, S, 0.4) == (2 / 3, 1.0)  # a score equal to the threshold counts as predicted
    assert precision_recall_at(Y, S, 0.95) == (0.0, 0.0)  # nothing predicted: precision 0, not NaN
    assert precision_recall_at(np.zeros(3, int), np.ones(3), 0.5) == (0.0, 0.0)  # nothing to find: recall 0


def test_average_precision_by_hand() -> None:
    # Ranked: hit (P=1, R=.5), miss, hit (P=2/3, R=1), miss -> AP = .5*1 + .5*2/3
    assert average_precision(Y, S) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(np.array([1, 1, 0]), np.array([0.9, 0.8, 0.1])) == 1.0
    assert average_precision(np.array([0, 0]), np.array([0.3, 0.2])) == 0.0


def test_pr_curve_by_hand() -> None:
    precision, recall, thresholds = pr_curve(Y, S)
    assert thresholds.tolist() == [0.1, 0.4, 0.8, 0.9]
    assert precision.tolist() == pytest.approx([0.5, 2 / 3, 0.5, 1.0, 1.0])
    assert recall.tolist() == [1.0, 1.0, 0.5, 0.5, 0.0]


def random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    y = (rng.random(n) < rng.uniform(0.05, 0.7)).astype(int)
    y[rng.integers(n)] = 1  # at least one positive, as scikit-learn needs for a defined AP
    scores = np.clip(y * rng.uniform(0, 0.5) + rng.random(n) * 0.7, 0, 1)
    if seed % 2:
        scores = np.round(scores, 1)  # many ties, the case step-wise definitions most often get wrong
    return y, scores


@pytest.mark.parametrize("seed", range(12))
def test_agrees_with_scikit_learn_on_random_data(seed: int) -> None:
    y, s = random_case(seed)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    ours = pr_curve(y, s)
    theirs = precision_recall_curve(y, s)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b)
    for threshold in (0.0, 0.3, 0.5, 0.77, 1.0):
        predicted = (s >= threshold).astype(int)
        assert precision_recall_at(y, s, threshold) == pytest.approx(
            (precision_score(y, predicted, zero_division=0), recall_score(y, predicted, zero_division=0)))


@pytest.mark.parametrize("seed", range(4))
def test_evaluate_multilabel_matches_scikit_learn_per_tag_and_micro(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n, k = 80, 4
    y = (rng.random((n, k)) < 0.35).astype(int)
    y[0] = 1  # every tag has a positive
    s = np.clip(y * 0.4 + rng.random((n, k)) * 0.6, 0, 1)
    thresholds = {"a": 0.5, "b": 0.3, "c": 0.7, "d": 0.6}
    ev = evaluate_scores(y, s, list(thresholds), thresholds, multiclass=False)
    predicted = (s >= np.array(list(thresholds.values()))).astype(int)
    for j, tag in enumerate(thresholds):
        m = ev.tag(tag)
        assert m.precision == pytest.approx(precision_score(y[:, j], predicted[:, j], zero_division=0))
        assert m.recall == pytest.approx(recall_score(y[:, j], predicted[:, j], zero_division=0))
        assert m.average_precision == pytest.approx(average_precision_score(y[:, j], s[:, j]))
        assert m.support == y[:, j].sum() and m.threshold == thresholds[tag]
    assert ev.micro_precision == pytest.approx(precision_score(y, predicted, average="micro"))
    assert ev.micro_recall == pytest.approx(recall_score(y, predicted, average="micro"))
    assert ev.mean_average_precision == pytest.approx(average_precision_score(y, s, average="macro"))
    assert ev.confusion_matrix is None


def test_evaluate_multiclass_confusion_and_accuracy_by_hand() -> None:
    tags = ["beach", "forest", "city"]
    y = np.eye(3, dtype=int)[[0, 0, 1, 2, 2]]
    s = np.array([[0.8, 0.1, 0.1],   # beach -> beach
                  [0.3, 0.6, 0.1],   # beach -> forest
                  [0.1, 0.7, 0.2],   # forest -> forest
                  [0.2, 0.2, 0.6],   # city -> city
                  [0.5, 0.1, 0.4]])  # city -> beach
    ev = evaluate_scores(y, s, tags, 0.5, multiclass=True)
    assert ev.confusion_labels == tags
    assert ev.confusion_matrix == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert ev.accuracy == pytest.approx(3 / 5)
    np.testing.assert_array_equal(ev.confusion_matrix, confusion_matrix(y.argmax(1), s.argmax(1)))
    assert (ev.tag("city").precision, ev.tag("city").recall) == (1.0, 0.5)


def test_multiclass_negatives_are_left_out_of_the_confusion_matrix() -> None:
    y = np.array([[1, 0], [0, 1], [0, 0]])
    s = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    ev = evaluate_scores(y, s, ["a", "b"], 0.5, multiclass=True)
    assert ev.confusion_matrix == [[1, 0], [0, 1]] and ev.confusion_skipped == 1
    assert ev.tag("a").precision == 0.5  # the negative still counts as a false positive at the threshold


def test_map_ignores_tags_without_positives() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.5], [0.1, 0.4], [0.8, 0.3]])
    ev = evaluate_scores(y, s, ["a", "b"], 0.5, multiclass=False)
    assert ev.tag("b").support == 0 and ev.mean_average_precision == 1.0


def test_evaluation_to_dict_is_json_serialisable() -> None:
    y, s = random_case(3)
    ev = evaluate_scores(np.c_[y, 1 - y], np.c_[s, 1 - s], ["x", "not x"], 0.5, multiclass=True)
    data = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert data["tags"][0]["tag"] == "x" and set(data["curves"]) == {"x", "not x"}
    assert len(data["curves"]["x"]["precision"]) == len(data["curves"]["x"]["thresholds"]) + 1


@pytest.mark.parametrize(("args", "message"), [
    ((np.ones((2, 2)), np.ones((2, 3)), ["a", "b"], 0.5, False), "same shape"),
    ((np.ones((2, 2)), np.ones((2, 2)), ["a"], 0.5, False), "1 names for 2"),
    ((np.ones((2, 2)), np.ones((2, 2)), ["a", "a"], 0.5, False), "unique"),
    ((np.full((2, 2), 2), np.ones((2, 2)), ["a", "b"], 0.5, False), "only 0 and 1"),
    ((np.ones((2, 2)), np.full((2, 2), np.nan), ["a", "b"], 0.5, False), "finite"),
    ((np.ones((2, 2)), np.ones((2, 2)), ["a", "b"], 1.5, False), "between 0 and 1"),
    ((np.ones((2, 2)), np.ones((2, 2)), ["a", "b"], {"a": 0.5}, False), "missing ['b']"),
    ((np.ones((2, 2)), np.ones((2, 2)), ["a", "b"], 0.5, True), "at most one true tag"),
])
def test_evaluate_rejects_bad_input_saying_what_is_wrong(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        evaluate_scores(*args)


def test_sweep_for_a_target_precision_takes_the_highest_recall_that_meets_it() -> None:
    y = np.array([[1], [1], [0], [1], [0], [1]])
    s = np.array([[0.95], [0.9], [0.8], [0.7], [0.6], [0.2]])
    best = threshold_sweep(y, s, target_precision=0.75, tag_names=["t"])["t"]
    # >= 0.7: 3 of 4 right (P .75, R .75); >= 0.2 gives R 1 but P 4/6.
    assert (best["recommended_threshold"], best["precision"], best["recall"], best["met"]) == (0.7, 0.75, 0.75, True)
    assert len(best["sweep"]) == 101 and best["sweep"][70]["threshold"] == 0.7


def test_sweep_says_when_a_precision_target_cannot_be_met() -> None:
    y = np.array([[0], [1], [0]])
    s = np.array([[0.9], [0.8], [0.1]])
    best = threshold_sweep(y, s, target_precision=0.9)["0"]
    assert best["met"] is False and "cannot be met" in best["reason"]
    assert (best["recommended_threshold"], best["precision"]) == (0.8, 0.5)


def test_sweep_for_a_target_recall_takes_the_highest_threshold_that_meets_it() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [1, 0]])
    s = np.array([[0.9, 0.2], [0.8, 0.7], [0.5, 0.6], [0.3, 0.1]])
    result = threshold_sweep(y, s, target_recall=2 / 3, tag_names=["a", "b"])
    assert result["a"]["recommended_threshold"] == 0.5 and result["a"]["recall"] == pytest.approx(2 / 3)
    assert result["b"]["recommended_threshold"] == 0.6 and result["b"]["met"]


def test_sweep_of_a_tag_without_positives_recommends_nothing() -> None:
    result = threshold_sweep(np.zeros((3, 1), int), np.full((3, 1), 0.5), target_recall=0.9)
    assert result["0"]["recommended_threshold"] is None and result["0"]["met"] is False


@pytest.mark.parametrize("seed", range(3))
def test_sweep_recommendation_is_optimal_against_brute_force(seed: int) -> None:
    y, s = random_case(seed * 2 + 1)
    best = threshold_sweep(y[:, None], s[:, None], target_precision=0.6)["0"]
    candidates = [(precision_recall_at(y, s, t), t) for t in np.unique(s)]
    feasible = [(r, t) for (p, r), t in candidates if p >= 0.6]
    if feasible:
        top_recall = max(r for r, _ in feasible)
        assert best["met"] and best["recall"] == pytest.approx(top_recall)
        assert best["recommended_threshold"] == max(t for r, t in feasible if r == top_recall)
    else:
        assert not best["met"]


def test_sweep_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        threshold_sweep(np.ones((1, 1)), np.ones((1, 1)))
    with pytest.raises(ValueError, match="exactly one"):
        threshold_sweep(np.ones((1, 1)), np.ones((1, 1)), target_precision=0.5, target_recall=0.5)

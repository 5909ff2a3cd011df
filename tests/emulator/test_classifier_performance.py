"""Precision, recall and average precision as Custom Vision defines them, checked on a case worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from devkit import scenes
from emulator import classifier
from emulator.features import extract_features

# Six images, two tags, two folds of three. Probabilities (tag 0, tag 1) and the true tag:
#   i0 (0.8, 0.2) tag 0 | i1 (0.4, 0.6) tag 0 | i2 (0.3, 0.7) tag 1      <- fold 0
#   i3 (0.9, 0.1) tag 1 | i4 (0.7, 0.3) tag 0 | i5 (0.2, 0.8) tag 1      <- fold 1
HAND_P = np.array([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
HAND_LABELS = [[0], [0], [1], [1], [0], [1]]
HAND_FOLDS = np.array([0, 0, 0, 1, 1, 1])


def test_hand_worked_case_at_threshold_065():
    perf = classifier.performance(HAND_P, HAND_LABELS, HAND_FOLDS, 0.65)
    # predicted (p >= 0.65): i0:t0 ok, i2:t1 ok, i3:t0 wrong, i4:t0 ok, i5:t1 ok -> 4 right of 5, 4 found of 6
    assert perf["precision"] == pytest.approx(4 / 5)
    assert perf["recall"] == pytest.approx(4 / 6)
    # fold 0: 2 of 2 right, 2 of 3 found; fold 1: 2 of 3 right, 2 of 3 found
    assert perf["precisionStdDeviation"] == pytest.approx(np.std([1.0, 2 / 3]))
    assert perf["recallStdDeviation"] == pytest.approx(0.0)
    # tag 0 ranking 0.9(-) 0.8(+) 0.7(+) 0.4(+) 0.3(-) 0.2(-): AP = (1/2 + 2/3 + 3/4) / 3
    # tag 1 ranking 0.8(+) 0.7(+) 0.6(-) 0.3(-) 0.2(-) 0.1(+): AP = (1 + 1 + 3/6) / 3
    ap0, ap1 = (1 / 2 + 2 / 3 + 3 / 4) / 3, (1 + 1 + 3 / 6) / 3
    assert perf["averagePrecision"] == pytest.approx((ap0 + ap1) / 2)
    # per fold mAP: fold 0 ranks perfectly (1.0); fold 1: tag 0 AP 1/2, tag 1 AP (1 + 2/3)/2
    assert perf["averagePrecisionStdDeviation"] == pytest.approx(np.std([1.0, (1 / 2 + (1 + 2 / 3) / 2) / 2]))
    tag0, tag1 = perf["perTag"]
    assert (tag0["precision"], tag0["recall"], tag0["averagePrecision"]) == pytest.approx((2 / 3, 2 / 3, ap0))
    assert (tag1["precision"], tag1["recall"], tag1["averagePrecision"]) == pytest.approx((1.0, 2 / 3, ap1))
    # tag 0 per fold: precision 1/1 and 1/2, recall 1/2 and 1/1
    assert tag0["precisionStdDeviation"] == pytest.approx(0.25)
    assert tag0["recallStdDeviation"] == pytest.approx(0.25)


def test_hand_worked_case_at_threshold_05():
    perf = classifier.performance(HAND_P, HAND_LABELS, HAND_FOLDS, 0.5)
    # every image predicts exactly its top tag: i0, i2, i4, i5 right; i1, i3 wrong
    assert (perf["precision"], perf["recall"]) == pytest.approx((4 / 6, 4 / 6))


def test_nothing_predicted_means_zero_precision_and_zero_recall():
    perf = classifier.performance(HAND_P, HAND_LABELS, HAND_FOLDS, 0.95)
    assert (perf["precision"], perf["recall"]) == (0.0, 0.0)
    assert perf["averagePrecision"] > 0  # the ranking does not depend on the threshold


def test_a_tag_with_no_images_is_left_out_of_the_mean_average_precision():
    p = np.hstack([HAND_P, np.full((6, 1), 0.1)])
    perf = classifier.performance(p, HAND_LABELS, HAND_FOLDS, 0.65)
    assert perf["perTag"][2] == {
        "precision": 0.0,
        "recall": 0.0,
        "averagePrecision": 0.0,
        "precisionStdDeviation": 0.0,
        "recallStdDeviation": 0.0,
        "averagePrecisionStdDeviation": 0.0,
    }
    without = classifier.performance(HAND_P, HAND_LABELS, HAND_FOLDS, 0.65)
    assert perf["averagePrecision"] == pytest.approx(without["averagePrecision"])


def test_raising_the_threshold_trades_recall_for_precision_on_trained_scenes():
    items = scenes.dataset(scenes.CLASSES, 12, seed=31, size=(256, 192))
    tag_of = {name: i for i, name in enumerate(scenes.CLASSES)}
    labels = [[tag_of[item.labels[0]]] for item in items]
    result = classifier.train(np.stack([extract_features(i.data) for i in items]), labels, 4, "Multiclass")
    sweep = [classifier.performance(result.oof_probabilities, labels, result.fold_of_image, t) for t in (0.1, 0.3, 0.5, 0.7, 0.9)]
    recalls = [s["recall"] for s in sweep]
    precisions = [s["precision"] for s in sweep]
    assert recalls == sorted(recalls, reverse=True)  # exact: fewer predictions can only find fewer
    assert precisions[-1] >= precisions[2] >= precisions[0]
    assert precisions[0] < 0.95  # at 0.1 some images get a second, wrong tag: the sweep has something to show
    assert len({s["averagePrecision"] for s in sweep}) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((HAND_P, HAND_LABELS, HAND_FOLDS, 1.5), "threshold"),
        ((HAND_P, HAND_LABELS[:5], HAND_FOLDS, 0.5), "5 label lists for 6"),
        ((HAND_P, HAND_LABELS, HAND_FOLDS[:5], 0.5), "fold_of_image"),
        ((HAND_P[0], HAND_LABELS, HAND_FOLDS, 0.5), "n_images, n_tags"),
        ((HAND_P, [[0], [2], [1], [1], [0], [1]], HAND_FOLDS, 0.5), "tag index 2"),
    ],
)
def test_inconsistent_inputs_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        classifier.performance(*args)

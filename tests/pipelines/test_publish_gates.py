"""Publish gates and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.gates import IterationInfo, check_gates, failed, iterations_to_delete
from pipelines.spec import Gates

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_only_set_gates_are_checked_and_a_miss_carries_the_numbers():
    results = check_gates(Gates(min_precision=0.9, min_map=0.8), precision=0.85, recall=0.1,
                          mean_average_precision=0.95)
    assert [r.metric for r in results] == ["precision", "mAP"]
    assert [r.describe() for r in failed(results)] == ["precision 0.850 (minimum 0.900) FAILED"]


def test_a_value_equal_to_the_gate_passes():
    assert not failed(check_gates(Gates(min_recall=0.8), precision=0, recall=0.8, mean_average_precision=0))


def its(*specs):
    return [IterationInfo(f"i{n}", f"Iteration {n}", status, T0 + timedelta(hours=n), pub)
            for n, status, pub in specs]


def test_retention_keeps_the_newest_k_unpublished_and_never_the_published_or_training_ones():
    iterations = its((1, "Completed", ""), (2, "Failed", ""), (3, "Completed", "prod"), (4, "Completed", ""),
                     (5, "Training", ""), (6, "Completed", ""))
    assert iterations_to_delete(iterations, 2) == ["i2", "i1"]
    assert iterations_to_delete(iterations, 0, protect=["i6"]) == ["i4", "i2", "i1"]


def test_retention_rejects_a_negative_keep():
    with pytest.raises(ValueError):
        iterations_to_delete([], -1)

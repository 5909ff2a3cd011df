"""Which review decisions a retrain exports: none made after a training started may be left out of the next one.

Against Azurite (its Last-Modified has whole seconds, as Azure Storage's does) and with the retrain's own default
window; found as a flaky `test_a_run_killed_after_each_step_is_finished_by_the_next_with_one_training` (83 images
where 84 were decided: a decision in the same second as the champion's training end was skipped)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from review_helpers import image_bytes

from pipelines import retrain
from pipelines.review import decisions

pytestmark = pytest.mark.azurite


def test_a_decision_made_in_the_same_second_as_the_window_opens_is_listed(review_world):
    """The listing skips records last modified before ``since`` without reading them; Last-Modified is whole seconds,
    so a record written at hh:mm:ss.9 lists as hh:mm:ss, before a ``since`` of hh:mm:ss.5."""
    world = review_world
    key = world.add("w/same-second.jpg", {"beach": 0.6, "city": 0.4}, data=image_bytes(5))["key"]
    time.sleep(1.05 - time.time() % 1)  # early in a second: the record is written within it
    now = datetime.now(UTC)
    decided = now.replace(microsecond=999_000)
    assert decisions.decide(world.blob_service, world.config, key, reviewer="ann", tags=["beach"], now=decided).applied
    since = now.replace(microsecond=500_000)
    listed = decisions.list_decisions(world.blob_service, world.config, since=since)
    assert [d["key"] for d in listed] == [key]
    assert decisions.list_decisions(world.blob_service, world.config, since=decided + timedelta(milliseconds=1)) == []


def _iteration(status: str, created: datetime, trained_at: datetime | None = None) -> SimpleNamespace:
    return SimpleNamespace(status=status, created=created, trained_at=trained_at)


def test_the_default_window_opens_an_hour_before_the_last_completed_training_started():
    """Its end was the opening before: decisions made while it trained, or during the upload before it, were in no
    training and never exported again."""
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    service = SimpleNamespace(iterations=lambda project_id: [
        _iteration("Completed", start - timedelta(days=30), start - timedelta(days=30) + timedelta(minutes=5)),
        _iteration("Completed", start, start + timedelta(minutes=40)),
        _iteration("Training", start + timedelta(days=1)),
    ])
    assert retrain.since_default(service, "p") == start - retrain.SINCE_OVERLAP == start - timedelta(hours=1)
    assert retrain.since_default(SimpleNamespace(iterations=lambda project_id: []), "p") is None

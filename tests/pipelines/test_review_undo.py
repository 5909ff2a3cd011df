"""Undo of a review decision against Azurite: a new record beside the decision (never an edit of it), the image back
in review under a new key and decidable again exactly once, the undone decision out of export and stats; refused
with a clear reason when late, repeated, or someone else's; an undo interrupted half-way is completed by the next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from review_helpers import image_bytes

from functions import naming
from pipelines.review import commands, decisions, undo
from pipelines.review.items import list_waiting

pytestmark = pytest.mark.azurite

T0 = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
DATA = image_bytes(77)


def _decide(world, name: str, tags: list[str], *, reviewer: str = "ann", now: datetime = T0) -> str:
    key = world.add(name, {"beach": 0.6, "city": 0.4}, data=DATA)["key"]
    assert decisions.decide(world.blob_service, world.config, key, reviewer=reviewer, tags=tags, now=now).applied
    return key


def test_undo_is_a_new_record_the_image_waits_again_and_the_undone_decision_leaves_export_and_stats(review_world):
    world = review_world
    key = _decide(world, "u/one.jpg", ["city"])
    before = decisions.read_decision(world.blob_service, world.config, key)
    result = undo.undo(world.blob_service, world.config, key, reviewer="ann", now=T0 + timedelta(seconds=30))
    assert result.new_key == undo.undone_key(key) != key
    assert decisions.read_decision(world.blob_service, world.config, key) == before  # never edited
    assert result.record["undone"]["tags"] == ["city"] and result.record["removed"] == before["destinations"]
    assert world.names("accepted") == []
    waiting = list_waiting(world.blob_service, world.config)
    assert [(i.key, i.source_name, i.problem) for i in waiting] == [(result.new_key, "u/one.jpg", None)]
    assert world.read("review", "u/one.jpg") == DATA  # the same bytes back
    assert decisions.list_decisions(world.blob_service, world.config) == []  # out of export and stats

    again = decisions.decide(world.blob_service, world.config, result.new_key, reviewer="ann", tags=["beach"],
                             now=T0 + timedelta(seconds=40))
    assert again.applied
    assert decisions.decide(world.blob_service, world.config, result.new_key, reviewer="bob", tags=["city"],
                            now=T0 + timedelta(seconds=41)).already_decided
    assert [(d["key"], d["tags"]) for d in decisions.list_decisions(world.blob_service, world.config)] == [
        (result.new_key, ["beach"])]
    assert world.names("accepted") == ["beach/u/one.jpg", "beach/u/one.jpg.cvops.json"]


@pytest.mark.parametrize(("reviewer", "after", "why"), [
    ("ann", timedelta(seconds=61), "can be undone for 60 s"),
    ("bob", timedelta(seconds=5), "only the person who decided"),
])
def test_an_undo_too_late_or_by_someone_else_is_refused_and_changes_nothing(review_world, reviewer, after, why):
    world = review_world
    key = _decide(world, "u/late.jpg", ["city"])
    with pytest.raises(undo.UndoRefused, match=why):
        undo.undo(world.blob_service, world.config, key, reviewer=reviewer, now=T0 + after)
    assert world.names("accepted") == ["city/u/late.jpg", "city/u/late.jpg.cvops.json"]
    assert [d["key"] for d in decisions.list_decisions(world.blob_service, world.config)] == [key]


def test_a_second_undo_of_one_decision_is_refused(review_world):
    world = review_world
    key = _decide(world, "u/twice.jpg", ["city"])
    undo.undo(world.blob_service, world.config, key, reviewer="ann", now=T0 + timedelta(seconds=1))
    with pytest.raises(undo.UndoRefused, match="already undone"):
        undo.undo(world.blob_service, world.config, key, reviewer="ann", now=T0 + timedelta(seconds=2))
    with pytest.raises(undo.UndoRefused, match="no decision"):
        undo.undo(world.blob_service, world.config, "f" * 32, reviewer="ann", now=T0)
    assert [n for n in world.names("review") if not n.endswith(naming.SIDECAR_SUFFIX)] == ["u/twice.jpg"]


def test_an_undo_interrupted_after_its_record_is_completed_by_the_next_attempt(review_world, monkeypatch):
    world = review_world
    key = _decide(world, "u/crash.jpg", ["city"])

    def crash(*args, **kwargs):
        raise ConnectionError("the process died here")

    real = undo._restore
    monkeypatch.setattr(undo, "_restore", crash)
    with pytest.raises(ConnectionError):
        undo.undo(world.blob_service, world.config, key, reviewer="ann", now=T0 + timedelta(seconds=3))
    assert world.names("review") == []  # recorded, not yet moved back
    monkeypatch.setattr(undo, "_restore", real)
    with pytest.raises(undo.UndoRefused, match="already undone"):
        undo.undo(world.blob_service, world.config, key, reviewer="ann", now=T0 + timedelta(seconds=4))
    assert world.names("accepted") == []
    assert [i.key for i in list_waiting(world.blob_service, world.config)] == [undo.undone_key(key)]


def test_an_interrupted_undo_is_completed_by_the_export_that_leaves_its_decision_out(review_world, monkeypatch):
    world = review_world
    key = _decide(world, "u/export.jpg", ["city"])
    real = undo._restore
    monkeypatch.setattr(undo, "_restore", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("died")))
    with pytest.raises(ConnectionError):
        undo.undo(world.blob_service, world.config, key, reviewer="ann", now=T0 + timedelta(seconds=3))
    monkeypatch.setattr(undo, "_restore", real)
    summary, text = commands.export(world.blob_service, world.config, since=T0 - timedelta(days=1), out=None)
    assert (summary["images"], summary["completed_pending"], text) == (0, 1, "")
    assert world.names("accepted") == []
    assert [i.key for i in list_waiting(world.blob_service, world.config)] == [undo.undone_key(key)]
    assert undo.complete_pending_undos(world.blob_service, world.config) == 0  # nothing left to do

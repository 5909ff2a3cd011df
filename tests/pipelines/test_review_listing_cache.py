"""The review page lists what is waiting after every decision: with the items it has read kept (by copy name and
ETag), a listing reads only the records of copies that are new since the last one, and says the same as a fresh one."""

from __future__ import annotations

import pytest

from functions import naming
from pipelines.review import decisions, items

pytestmark = pytest.mark.azurite


@pytest.fixture
def reads(monkeypatch):
    """How many review records (sidecars) the listings read."""
    count = {"n": 0}
    real = items._item

    def counted(*args, **kwargs):
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(items, "_item", counted)
    return count


def test_a_kept_listing_reads_each_record_once_then_only_what_is_new_and_agrees_with_a_fresh_one(review_world, reads):
    added = [review_world.add(f"cache/{i:02d}.jpg", {"beach": 0.6, "city": 0.4}) for i in range(12)]
    known: items.ItemCache = {}

    first = items.list_waiting(review_world.blob_service, review_world.config, known=known)
    assert [i.key for i in first] == [r["key"] for r in added] and reads["n"] == 12

    reads["n"] = 0
    assert items.list_waiting(review_world.blob_service, review_world.config, known=known) == first and reads["n"] == 0

    decisions.decide(review_world.blob_service, review_world.config, added[0]["key"], reviewer="alice", tags=["beach"],
                     reject=False)
    reads["n"] = 0  # the decision read its own item
    after_decision = items.list_waiting(review_world.blob_service, review_world.config, known=known)
    assert [i.key for i in after_decision] == [r["key"] for r in added[1:]] and reads["n"] == 0
    assert len(known) == 11  # the moved copy is gone from the review location, and from what is kept

    newcomer = review_world.add("cache/new.jpg", {"city": 0.7, "beach": 0.3})
    with_newcomer = items.list_waiting(review_world.blob_service, review_world.config, known=known)
    assert reads["n"] == 1 and newcomer["key"] in [i.key for i in with_newcomer]
    reads["n"] = 0
    assert with_newcomer == items.list_waiting(review_world.blob_service, review_world.config)  # a fresh listing says the same
    assert reads["n"] == len(with_newcomer)


def test_a_copy_whose_record_is_not_written_yet_is_read_again_until_it_is(review_world, reads):
    record = review_world.add("late/one.jpg", {"beach": 0.6})
    copy = record["destinations"][0].split("/", 1)[1]
    sidecar = review_world.blob_service.get_blob_client(review_world.containers["review"], naming.sidecar_name(copy))
    body = sidecar.download_blob().readall()
    sidecar.delete_blob()  # the app writes the copy, then the record beside it: a listing may fall in between
    known: items.ItemCache = {}
    assert items.list_waiting(review_world.blob_service, review_world.config, known=known) == [] and known == {}
    sidecar.upload_blob(body)
    assert [i.key for i in items.list_waiting(review_world.blob_service, review_world.config, known=known)] == [record["key"]]
    assert len(known) == 1

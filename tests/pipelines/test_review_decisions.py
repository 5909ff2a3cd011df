"""Review decisions on Azurite: listed items, one decision per image under racing reviewers, the review copy deleted
only after its verified copies exist, a crash between any two writes converging, hostile names round-tripping."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from review_helpers import HOSTILE_NAMES, image_bytes, make_world

from cvops.errors import ConfigurationError
from functions import naming
from functions.store import BlobStore
from pipelines.review import decisions, items

pytestmark = pytest.mark.azurite


@pytest.fixture
def world(blob_service):
    w = make_world(blob_service)
    yield w
    w.drop()


def test_waiting_items_carry_the_apps_record(world):
    first = world.add("shelf/a.jpg", {"beach": 0.71, "city": 0.2, "forest": 0.09})
    world.add("shelf/b.png", {"forest": 0.6, "city": 0.4}, content_type="image/png")
    waiting = items.list_waiting(world.blob_service, world.config)
    assert [i.source_name for i in waiting] == ["shelf/a.jpg", "shelf/b.png"]
    item = waiting[0]
    assert item.key == first["key"]
    assert item.copy == f"{world.containers['review']}/shelf/a.jpg"
    assert item.scores == (("beach", 0.71), ("city", 0.2), ("forest", 0.09))
    assert (item.top_tag, item.top_score) == ("beach", 0.71)
    assert item.classification_type == "multiclass"
    assert "review band" in item.reason and item.reason_codes == ("in_review_band",)
    assert item.model["publish_name"] == "prod"
    assert item.arrived == datetime(2026, 11, 30, 3, 0, 0, tzinfo=UTC)
    assert item.etag
    data, kind = items.read_image(world.blob_service, item)
    assert kind == "image/jpeg" and data == image_bytes(1)
    assert items.get_item(world.blob_service, world.config, item.key) == item


def test_the_served_type_is_what_the_bytes_are_never_the_stored_type(world):
    world.add("evil.html", {"beach": 0.7}, content_type="text/html", data=b"<html><script>alert(1)</script>")
    world.add("photo.bin", {"beach": 0.7}, content_type="application/octet-stream", data=image_bytes(3, "PNG"))
    evil, photo = items.list_waiting(world.blob_service, world.config)
    assert items.read_image(world.blob_service, evil)[1] == "application/octet-stream"
    assert items.read_image(world.blob_service, photo)[1] == "image/png"


def test_a_copy_without_its_sidecar_yet_is_not_listed(world):
    record = world.add("a.jpg", {"beach": 0.7})
    world.blob_service.get_blob_client(world.containers["review"], "a.jpg.cvops.json").delete_blob()
    assert items.list_waiting(world.blob_service, world.config) == []
    assert items.get_item(world.blob_service, world.config, record["key"]) is None


@pytest.mark.parametrize("key", ["../x", "A" * 32, "0" * 31, "<script>", "0" * 32 + "\n"])
def test_a_forged_key_names_no_blob(world, key):
    with pytest.raises(ValueError, match="not a review item key"):
        decisions.decide(world.blob_service, world.config, key, reviewer="ann", tags=["beach"])


def test_accepting_moves_the_image_and_records_the_decision_once(world):
    record = world.add("shelf/a.jpg", {"beach": 0.71, "city": 0.29})
    now = datetime(2026, 11, 30, 4, 5, tzinfo=UTC)
    result = decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=["beach"],
                              now=now)
    assert result.applied and result.moved
    assert world.names("review") == []
    assert world.names("accepted") == ["beach/shelf/a.jpg", "beach/shelf/a.jpg.cvops.json"]
    assert world.read("accepted", "beach/shelf/a.jpg") == image_bytes(1)
    decision = json.loads(world.read("results", f"reviews/{record['key']}.json"))
    assert decision["reviewer"] == "ann" and decision["decided_at"] == "2026-11-30T04:05:00+00:00"
    assert decision["tags"] == ["beach"] and decision["decision"] == "accepted" and decision["agreed"] is True
    assert decision["model"]["top_tag"] == "beach" and decision["model"]["top_score"] == 0.71
    assert decision["review_copy"]["name"] == "shelf/a.jpg" and decision["review_copy"]["etag"]
    assert decision["destinations"] == [f"{world.containers['accepted']}/beach/shelf/a.jpg"]
    sidecar = json.loads(world.read("accepted", "beach/shelf/a.jpg.cvops.json"))
    assert sidecar["key"] == record["key"] and sidecar["review"]["reviewer"] == "ann"
    # The app's result record is unchanged.
    original = [n for n in world.names("results") if n.startswith("date=")]
    assert json.loads(world.read("results", original[0])) == record
    again = decisions.decide(world.blob_service, world.config, record["key"], reviewer="bob", tags=["city"])
    assert again.already_decided and again.reviewer == "ann" and again.tags == ["beach"] and again.moved
    assert items.list_waiting(world.blob_service, world.config) == []


def test_rejecting_moves_the_image_to_rejected(world):
    record = world.add("a.jpg", {"beach": 0.55, "city": 0.45})
    result = decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=None, reject=True)
    assert result.applied and result.rejected
    assert world.names("rejected") == ["a.jpg", "a.jpg.cvops.json"] and world.names("review") == []
    assert world.names("accepted") == []


def test_multilabel_accepts_several_tags_one_copy_each(world):
    record = world.add("m.jpg", {"beach": 0.7, "forest": 0.65, "city": 0.1}, classification_type="multilabel")
    result = decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann",
                              tags=["beach", "forest"])
    assert result.applied
    assert world.names("accepted") == ["beach/m.jpg", "beach/m.jpg.cvops.json", "forest/m.jpg",
                                         "forest/m.jpg.cvops.json"]


@pytest.mark.parametrize(("kind", "tags", "reject", "message"), [
    ("multiclass", ["beach", "city"], False, "exactly one tag"),
    ("multiclass", [], False, "choose a tag"),
    ("multiclass", ["<b>nope</b>"], False, "unknown tag <b>nope</b>"),
    ("multilabel", [], False, "choose a tag"),
    ("multilabel", ["beach", "sky"], False, "unknown tag sky"),
    ("multiclass", ["beach"], True, "a rejection has no tags"),
])
def test_a_wrong_choice_is_refused_and_nothing_is_written(world, kind, tags, reject, message):
    record = world.add("a.jpg", {"beach": 0.7, "city": 0.2, "forest": 0.1}, classification_type=kind)
    with pytest.raises(ValueError, match=message):
        decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=tags, reject=reject)
    assert [n for n in world.names("results") if n.startswith("reviews/")] == []
    assert world.names("review") == ["a.jpg", "a.jpg.cvops.json"]


def test_racing_reviewers_make_exactly_one_decision(world):
    records = [world.add(f"race/{i}.jpg", {"beach": 0.7, "city": 0.3}) for i in range(3)]
    for record in records:
        barrier = threading.Barrier(8)
        results = []

        def review(i, key=record["key"], barrier=barrier, results=results):
            barrier.wait()
            results.append(decisions.decide(world.blob_service, world.config, key, reviewer=f"r{i}",
                                            tags=["beach" if i % 2 else "city"]))

        threads = [threading.Thread(target=review, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = Counter(r.status for r in results)
        assert statuses["applied"] == 1 and statuses["already_decided"] + statuses["applied"] == 8
        winner = next(r for r in results if r.applied)
        assert all(r.reviewer == winner.reviewer and r.tags == winner.tags for r in results)
        tag = winner.tags[0]
        name = record["blob"]["name"]
        assert world.read("accepted", f"{tag}/{name}")
    assert world.names("review") == []
    decided = [decisions.read_decision(world.blob_service, world.config, r["key"]) for r in records]
    assert sorted(n for n in world.names("accepted") if not n.endswith(".cvops.json")) == sorted(
        f"{d['tags'][0]}/{r['blob']['name']}" for d, r in zip(decided, records, strict=True))


def test_the_review_copy_is_deleted_only_after_its_verified_copy_exists(world, monkeypatch):
    record = world.add("a.jpg", {"beach": 0.7})
    data = image_bytes(1)
    seen = []
    original = BlobStore.delete_version

    def checked(self, container, name, etag):
        if container == world.containers["review"] and name == "a.jpg":
            copy = world.blob_service.get_blob_client(world.containers["accepted"], "beach/a.jpg")
            props = copy.get_blob_properties()
            assert bytes(props.content_settings.content_md5) == hashlib.md5(data).digest()
            assert copy.download_blob().readall() == data
            assert world.blob_service.get_blob_client(world.containers["accepted"],
                                                      "beach/a.jpg.cvops.json").exists()
            seen.append(name)
        return original(self, container, name, etag)

    monkeypatch.setattr(BlobStore, "delete_version", checked)
    assert decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=["beach"]).moved
    assert seen == ["a.jpg"]


def test_a_failed_copy_leaves_the_review_copy_in_place(world, monkeypatch):
    record = world.add("a.jpg", {"beach": 0.7})

    def fail(*args, **kwargs):
        raise OSError("network down")

    monkeypatch.setattr(BlobStore, "put_verified", fail)
    with pytest.raises(OSError):
        decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=["beach"])
    assert world.names("review") == ["a.jpg", "a.jpg.cvops.json"]
    assert world.names("accepted") == []


WRITES = ["create_record", "put_verified", "put_json", "delete_version"]
CRASHES = [(n, when) for n in range(1, 6) for when in ("before", "after")]
"""A decision writes five times: its record, the copy, the copy's sidecar, then deletes the review copy and its
sidecar. Each crash point is the n-th write failing before or after it lands."""


def crash_once(monkeypatch, n, when):
    """Make the n-th write of BlobStore raise once, before or after it lands; returns a function undoing it."""
    calls = {"n": 0}
    originals = {name: getattr(BlobStore, name) for name in WRITES}

    def wrap(name):
        def write(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == n and when == "before":
                raise ConnectionError(f"killed before {name}")
            answer = originals[name](self, *args, **kwargs)
            if calls["n"] == n:
                raise ConnectionError(f"killed after {name}")
            return answer
        return write

    for name in WRITES:
        monkeypatch.setattr(BlobStore, name, wrap(name))

    def undo():
        for name in WRITES:
            monkeypatch.setattr(BlobStore, name, originals[name])
    return undo


@pytest.mark.parametrize(("n", "when"), CRASHES)
def test_a_crash_at_any_write_converges_on_the_recorded_decision(world, monkeypatch, n, when):
    record = world.add("crash/a.jpg", {"beach": 0.7, "city": 0.3})
    undo = crash_once(monkeypatch, n, when)
    with pytest.raises(ConnectionError):
        decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=["beach"])
    undo()
    second = decisions.decide(world.blob_service, world.config, record["key"], reviewer="bob", tags=["city"])
    if (n, when) == (1, "before"):  # nothing was recorded: bob's is the first decision
        assert second.applied and second.tags == ["city"]
        tag = "city"
    else:
        assert second.already_decided and second.reviewer == "ann" and second.tags == ["beach"]
        tag = "beach"
    assert second.moved
    assert world.names("review") == []
    assert world.names("accepted") == [f"{tag}/crash/a.jpg", f"{tag}/crash/a.jpg.cvops.json"]
    assert world.read("accepted", f"{tag}/crash/a.jpg") == image_bytes(1)
    assert decisions.complete_pending(world.blob_service, world.config) == 0


@pytest.mark.parametrize(("n", "when"), [c for c in CRASHES if c != (1, "before")])
def test_the_sweep_completes_an_interrupted_move(world, monkeypatch, n, when):
    record = world.add("a.jpg", {"beach": 0.7})
    undo = crash_once(monkeypatch, n, when)
    with pytest.raises(ConnectionError):
        decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=["beach"])
    undo()
    assert items.list_waiting(world.blob_service, world.config) == []  # decided: not waiting while it finishes
    assert decisions.complete_pending(world.blob_service, world.config) == (0 if (n, when) == (5, "after") else 1)
    assert world.names("review") == []
    assert world.names("accepted") == ["beach/a.jpg", "beach/a.jpg.cvops.json"]
    assert decisions.complete_pending(world.blob_service, world.config) == 0


def test_a_name_held_by_another_blob_gets_the_versions_own_name(world):
    record = world.add("a.jpg", {"beach": 0.7})
    world.blob_service.get_blob_client(world.containers["accepted"], "beach/a.jpg").upload_blob(b"other version")
    result = decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=["beach"])
    assert result.applied and result.moved
    own = naming.versioned_copy_name("beach/a.jpg", "a.jpg", record["key"][:16])
    assert world.read("accepted", "beach/a.jpg") == b"other version"
    assert world.read("accepted", own) == image_bytes(1)
    decision = json.loads(world.read("results", f"reviews/{record['key']}.json"))
    assert decision["destinations"] == [f"{world.containers['accepted']}/{own}"]
    assert decision["placement"][0]["reason"] == "name_taken"


def test_hostile_names_round_trip(world):
    records = [world.add(name, {"beach": 0.7, "city": 0.3}, data=image_bytes(i + 10))
               for i, name in enumerate(HOSTILE_NAMES)]
    waiting = items.list_waiting(world.blob_service, world.config)
    assert sorted(i.source_name for i in waiting) == sorted(HOSTILE_NAMES)
    for i, record in enumerate(records):
        result = decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann <b>",
                                  tags=["city"] if i % 2 else None, reject=not i % 2)
        assert result.applied and result.moved
        location = world.config.rejected if result.rejected else world.config.accepted
        tag = None if result.rejected else "city"
        copy = naming.copy_name(location, record["blob"]["name"], tag)
        container = "rejected" if result.rejected else "accepted"
        assert world.read(container, copy) == image_bytes(i + 10)
        decoded = naming.decode(location, copy, tagged=tag is not None)
        assert naming.matches(decoded, record["blob"]["name"])
    assert world.names("review") == []


def test_a_review_copy_replaced_after_the_decision_is_neither_copied_nor_deleted(world, monkeypatch):
    record = world.add("a.jpg", {"beach": 0.7})
    undo = crash_once(monkeypatch, 1, "after")  # the decision is recorded, nothing moved
    with pytest.raises(ConnectionError):
        decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=["beach"])
    undo()
    world.blob_service.get_blob_client(world.containers["review"], "a.jpg").upload_blob(b"other bytes", overwrite=True)
    again = decisions.decide(world.blob_service, world.config, record["key"], reviewer="bob", tags=["beach"])
    assert again.already_decided and again.reviewer == "ann" and not again.moved
    assert decisions.complete_pending(world.blob_service, world.config) == 0
    assert world.read("review", "a.jpg") == b"other bytes"
    assert world.names("accepted") == []


def test_a_copy_without_the_key_in_its_metadata_is_found_by_its_sidecar(world):
    record = world.add("old.jpg", {"beach": 0.7})
    blob = world.blob_service.get_blob_client(world.containers["review"], "old.jpg")
    blob.set_blob_metadata({"cvops_record": "results/x.jsonl"})  # as copies from before cvops_key
    assert items.get_item(world.blob_service, world.config, record["key"]).source_name == "old.jpg"
    assert decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=["beach"]).moved


@pytest.mark.parametrize("tags", ["beach", [["beach"]], [None]])
def test_tags_that_are_not_a_list_of_names_are_refused(world, tags):
    record = world.add("a.jpg", {"beach": 0.7})
    with pytest.raises(ValueError, match="list of tag names"):
        decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=tags)


def test_accepting_copies_into_the_accepted_container_the_app_reads_even_from_its_former_setting(world, caplog):
    """The review tool reads the app's own rule (functions.config.route_location): a deployment still configured with
    CVOPS_CLASSIFIED_CONTAINER gets the reviewed image where the app puts accepted images, not in a default."""
    former = f"{world.containers['accepted']}-former"
    world.blob_service.create_container(former)
    try:
        env = {**world.env(), "CVOPS_CLASSIFIED_CONTAINER": former}
        del env["CVOPS_ACCEPTED_CONTAINER"]
        with caplog.at_level("WARNING", logger="cvops.functions"):
            config = items.ReviewConfig.from_environ(env)
        assert config.accepted.container == former
        assert "CVOPS_CLASSIFIED_CONTAINER" in caplog.text and "CVOPS_ACCEPTED_CONTAINER" in caplog.text
        record = world.add("shelf/old.jpg", {"beach": 0.7, "city": 0.3})
        result = decisions.decide(world.blob_service, config, record["key"], reviewer="ann", tags=["beach"])
        assert result.applied and result.moved
        copies = sorted(b.name for b in world.blob_service.get_container_client(former).list_blobs())
        assert copies == ["beach/shelf/old.jpg", "beach/shelf/old.jpg.cvops.json"]
        assert world.names("accepted") == []
    finally:
        world.blob_service.delete_container(former)


def test_the_review_tool_refuses_a_former_and_a_new_accepted_setting_that_disagree(world):
    env = {**world.env(), "CVOPS_CLASSIFIED_CONTAINER": "somewhere-else"}
    with pytest.raises(ConfigurationError, match=r"CVOPS_ACCEPTED_CONTAINER=.*CVOPS_CLASSIFIED_CONTAINER="):
        items.ReviewConfig.from_environ(env)

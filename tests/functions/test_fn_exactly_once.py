"""At least once in, exactly one outcome out: duplicates, races, crashes between writes, changed blobs, moves."""

from __future__ import annotations

import os
import threading

import pytest
from azure.storage.blob import BlobClient
from fn_helpers import registered, scene

from functions import context, store
from functions.blob_reader import FIRST_READ_BYTES, read_new_blob
from functions.handler import observe, process_blob
from functions.naming import SIDECAR_SUFFIX


class Killed(BaseException):
    """The process dying mid-invocation (not an Exception: nothing in the handler may catch it)."""


def test_the_same_blob_delivered_twice_gives_one_copy_one_record_and_no_second_prediction(function_env):
    function_env.upload("dup.jpg", scene("city"))
    first = function_env.deliver("dup.jpg")
    second = function_env.deliver("dup.jpg")
    assert not first.duplicate and second.duplicate
    assert second.record == first.record
    assert second.prediction_ms == 0.0 and second.storage_calls == 2  # GET record, HEAD sidecar
    assert function_env.names("accepted") == ["city/dup.jpg", f"city/dup.jpg{SIDECAR_SUFFIX}"]
    assert len(function_env.records()) == 1


def test_concurrent_deliveries_of_one_blob_agree_on_one_record(function_env):
    function_env.upload("race.jpg", scene("forest"))
    streams = [function_env.client("race.jpg") for _ in range(4)]
    seen = []
    barrier = threading.Barrier(len(streams))

    def run(stream):
        barrier.wait()
        registered("route_new_blob")(stream)

    with observe(seen.append):
        threads = [threading.Thread(target=run, args=(s,)) for s in streams]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(seen) == 4
    assert len({o.record["key"] + o.record["processed_at"] for o in seen}) == 1  # every delivery adopted one record
    assert len(function_env.records()) == 1
    assert function_env.names("accepted") == ["forest/race.jpg", f"forest/race.jpg{SIDECAR_SUFFIX}"]


WRITES = ("create_record", "put_verified", "put_json", "delete_version")


@pytest.mark.parametrize("die_before", [1, 2, 3, 4], ids=["before-record", "before-copy", "before-sidecar",
                                                          "before-delete"])
def test_a_run_killed_between_any_two_writes_converges_on_rerun(function_env, monkeypatch, die_before):
    function_env.set(CVOPS_MOVE_SOURCE="true")
    data = scene("beach", seed=8)
    function_env.upload("k.jpg", data)
    stream = function_env.client("k.jpg")
    writes = {"n": 0}
    originals = {name: getattr(store.BlobStore, name) for name in WRITES}

    def dying(name):
        def write(self, *args, **kwargs):
            writes["n"] += 1
            if writes["n"] == die_before:
                raise Killed(f"killed before write {die_before} ({name})")
            return originals[name](self, *args, **kwargs)
        return write

    with monkeypatch.context() as patch:
        for name in WRITES:
            patch.setattr(store.BlobStore, name, dying(name))
        with pytest.raises(Killed):
            registered("route_new_blob")(stream)

    outcome = function_env.deliver("k.jpg")  # the host's retry
    assert outcome.duplicate == (die_before > 1)
    assert len(function_env.records()) == 1
    assert function_env.names("accepted") == ["beach/k.jpg", f"beach/k.jpg{SIDECAR_SUFFIX}"]
    assert function_env.read("accepted", "beach/k.jpg") == data
    assert function_env.names("incoming") == []  # moved once the copy was verified


def test_a_changed_blob_is_routed_again_as_a_new_version(function_env):
    function_env.upload("v.jpg", scene("beach"))
    first = function_env.deliver("v.jpg")
    function_env.upload("v.jpg", scene("city"))
    second = function_env.deliver("v.jpg")
    assert not second.duplicate
    assert first.record["blob"]["etag"] != second.record["blob"]["etag"]
    assert {r["tags"][0] for r in function_env.records()} == {"beach", "city"}
    assert "city/v.jpg" in function_env.names("accepted")


def test_the_source_is_moved_only_after_its_copy_and_only_if_unchanged(function_env):
    function_env.set(CVOPS_MOVE_SOURCE="true")
    function_env.upload("m.jpg", scene("forest"))
    outcome = function_env.deliver("m.jpg")
    assert outcome.storage_calls == 5
    assert function_env.names("incoming") == []
    assert "deleted " + f"{function_env.incoming}/m.jpg" in outcome.written

    function_env.upload("n.jpg", scene("forest"))
    stale = read_new_blob(function_env.client("n.jpg"))  # an invocation that read the old version...
    function_env.upload("n.jpg", scene("city"))  # ...which is replaced while it is being routed
    route_after_read(stale)
    assert function_env.names("incoming") == ["n.jpg"]  # the new version stays for its own event


def test_a_new_version_killed_after_its_record_is_routed_on_rerun_not_taken_for_the_old_one(function_env, monkeypatch):
    """Version A of a name is routed; version B replaces it and its first delivery dies right after its record. The
    retry must write B's copies (A's sidecar at the same path is not B's), and only then move B's source."""
    function_env.set(CVOPS_MOVE_SOURCE="true")
    function_env.upload("x.jpg", scene("beach", seed=21))
    function_env.deliver("x.jpg")  # A: routed and moved
    version_b = scene("beach", seed=22)
    function_env.upload("x.jpg", version_b)
    stream_b = function_env.client("x.jpg")
    original = store.BlobStore.put_verified

    def killed(self, *args, **kwargs):
        raise Killed("killed after B's record")

    with monkeypatch.context() as patch:
        patch.setattr(store.BlobStore, "put_verified", killed)
        with pytest.raises(Killed):
            registered("route_new_blob")(stream_b)
    assert store.BlobStore.put_verified is original

    outcome = function_env.deliver("x.jpg")  # the host's retry of B
    assert outcome.duplicate
    container, copy = outcome.record["destinations"][0].split("/", 1)
    assert function_env.blob_service.get_blob_client(container, copy).download_blob().readall() == version_b
    assert function_env.names("incoming") == []


def test_a_late_retry_of_an_old_version_does_not_overwrite_the_new_versions_copy(function_env):
    function_env.upload("y.jpg", scene("beach", seed=31))
    read_a = read_new_blob(function_env.client("y.jpg"))  # an invocation of A that is held up after its read
    function_env.deliver("y.jpg")  # A routed
    version_b = scene("beach", seed=32)
    function_env.upload("y.jpg", version_b)
    routed_b = function_env.deliver("y.jpg")  # B routed over A's copy
    route_after_read(read_a)  # A's held-up invocation writes late
    for destination in routed_b.record["destinations"]:
        container, copy = destination.split("/", 1)
        assert function_env.blob_service.get_blob_client(container, copy).download_blob().readall() == version_b
    assert len(function_env.records()) == 2


def test_a_blob_replaced_between_its_first_range_and_the_rest_is_routed_as_the_version_it_was_read_as(
        function_env, monkeypatch):
    """The trigger reads a large blob in two ranges; the rest is requested with If-Match on the first range's ETag.
    A write between the two reads makes the trigger start again, so the record's ETag, its size and the routed copy
    all belong to one version (never the first version's head with the second version's tail)."""
    older = os.urandom(FIRST_READ_BYTES + 1000)  # not an image: quarantined, and its copy holds the bytes read
    newer = os.urandom(FIRST_READ_BYTES + 2000)
    function_env.upload("big.bin", older)
    original = BlobClient.download_blob
    reads = []

    def replaced_after_first_read(self, *args, **kwargs):
        reads.append(kwargs.get("offset"))
        answer = original(self, *args, **kwargs)
        if len(reads) == 1:
            function_env.upload("big.bin", newer)  # a real write, between the trigger's two reads
        return answer

    monkeypatch.setattr(BlobClient, "download_blob", replaced_after_first_read)
    outcome = function_env.deliver("big.bin")
    monkeypatch.undo()
    current = function_env.blob_service.get_blob_client(function_env.incoming, "big.bin").get_blob_properties()
    assert reads[:3] == [0, FIRST_READ_BYTES, 0]  # head, refused tail (412), head again
    assert outcome.record["blob"]["etag"] == current.etag and outcome.record["blob"]["size"] == len(newer)
    [copy] = outcome.record["destinations"]
    assert function_env.blob_service.get_blob_client(*copy.split("/", 1)).download_blob().readall() == newer


def route_after_read(found) -> None:
    """The rest of an invocation that has read ``found`` (see read_new_blob): the handler, as the trigger calls it."""
    registered("route_new_blob")  # the app is loaded, as in the host
    process_blob(found.source, found.data, context.current(), refused=found.refused)

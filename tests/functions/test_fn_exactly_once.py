"""At least once in, exactly one outcome out: duplicates, races, crashes between writes, changed blobs, moves."""

from __future__ import annotations

import threading

import pytest
from fn_helpers import registered, scene

from functions import store
from functions.handler import observe
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
    assert function_env.names("classified") == ["city/dup.jpg", f"city/dup.jpg{SIDECAR_SUFFIX}"]
    assert len(function_env.records()) == 1


def test_concurrent_deliveries_of_one_blob_agree_on_one_record(function_env):
    function_env.upload("race.jpg", scene("forest"))
    streams = [function_env.stream("race.jpg") for _ in range(4)]
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
    assert function_env.names("classified") == ["forest/race.jpg", f"forest/race.jpg{SIDECAR_SUFFIX}"]


WRITES = ("create_record", "put_verified", "put_json", "delete_version")


@pytest.mark.parametrize("die_before", [1, 2, 3, 4], ids=["before-record", "before-copy", "before-sidecar",
                                                          "before-delete"])
def test_a_run_killed_between_any_two_writes_converges_on_rerun(function_env, monkeypatch, die_before):
    function_env.set(CVOPS_MOVE_SOURCE="true")
    data = scene("beach", seed=8)
    function_env.upload("k.jpg", data)
    stream = function_env.stream("k.jpg")
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
    assert function_env.names("classified") == ["beach/k.jpg", f"beach/k.jpg{SIDECAR_SUFFIX}"]
    assert function_env.read("classified", "beach/k.jpg") == data
    assert function_env.names("incoming") == []  # moved once the copy was verified


def test_a_changed_blob_is_routed_again_as_a_new_version(function_env):
    function_env.upload("v.jpg", scene("beach"))
    first = function_env.deliver("v.jpg")
    function_env.upload("v.jpg", scene("city"))
    second = function_env.deliver("v.jpg")
    assert not second.duplicate
    assert first.record["blob"]["etag"] != second.record["blob"]["etag"]
    assert {r["tags"][0] for r in function_env.records()} == {"beach", "city"}
    assert "city/v.jpg" in function_env.names("classified")


def test_the_source_is_moved_only_after_its_copy_and_only_if_unchanged(function_env):
    function_env.set(CVOPS_MOVE_SOURCE="true")
    function_env.upload("m.jpg", scene("forest"))
    outcome = function_env.deliver("m.jpg")
    assert outcome.storage_calls == 5
    assert function_env.names("incoming") == []
    assert "deleted " + f"{function_env.incoming}/m.jpg" in outcome.written

    function_env.upload("n.jpg", scene("forest"))
    stale = function_env.stream("n.jpg")
    function_env.upload("n.jpg", scene("city"))  # replaced while the old version was being routed
    registered("route_new_blob")(stale)
    assert function_env.names("incoming") == ["n.jpg"]  # the new version stays for its own event

"""A hostile upload is not read for the app: the blob trigger gets a BlobClient and reads only what it will classify.

Issue 17: with an ``InputStream`` the Functions host read every new blob whole (up to 500 MB) before any check ran.
Here the upload is above ``Limits.max_input_bytes`` (32 MiB; a 500 MB one is measured by bench/bench_large_upload.py)
and goes through the registered trigger on Azurite, with the BlobClient the blob extension builds.
"""

from __future__ import annotations

import tracemalloc

from fn_helpers import scene

from functions.blob_reader import FIRST_READ_BYTES
from functions.images import Limits, MiB, input_too_large

SIZE = Limits().max_input_bytes + MiB


def upload_zeros(env, name: str, size: int) -> None:
    """A blob of ``size`` zero bytes, staged in 4 MiB blocks (the test never holds it whole)."""
    client = env.blob_service.get_blob_client(env.incoming, name)
    block = bytes(4 * MiB)
    ids = []
    for i, start in enumerate(range(0, size, len(block))):
        block_id = f"{i:08d}"
        client.stage_block(block_id, block[:min(len(block), size - start)])
        ids.append(block_id)
    client.commit_block_list(ids)


def test_an_upload_above_the_input_limit_is_quarantined_by_its_size_after_reading_only_its_first_range(function_env):
    function_env.set(CVOPS_MOVE_SOURCE="true")
    upload_zeros(function_env, "huge.jpg", SIZE)
    tracemalloc.start()
    try:
        outcome = function_env.deliver("huge.jpg")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Its first range only (2 MiB, and the 16 MiB list the storage SDK gathers it in); read whole it would cost more
    # than 300 MiB (the blob, and 8 bytes a byte of its first 32 MiB GET).
    assert peak < 24 * MiB, f"routing a {SIZE:,}-byte upload allocated {peak:,} bytes"
    record = outcome.record
    refusal = input_too_large(SIZE)
    assert record["outcome"] == "quarantine" and record["blob"]["size"] == SIZE
    assert [(r["code"], r["message"]) for r in record["reasons"]] == [(refusal.reason, refusal.message)]
    assert record["destinations"] == [] and record["placement"][0]["reason"] == "not_copied"
    assert function_env.names("quarantine") == []  # no copy: it would read what the limit refuses to read
    assert function_env.names("incoming") == ["huge.jpg"]  # nothing lost: with no copy, the source is never moved

    again = function_env.deliver("huge.jpg")  # the host delivers at least once
    assert again.duplicate and again.record == record and len(function_env.records()) == 1


def test_an_upload_at_the_input_limit_is_read_whole_and_judged_as_an_image(function_env):
    """The size rule refuses only what is above the limit; the rest (here, not an image) is judged on its bytes."""
    upload_zeros(function_env, "at-limit.jpg", Limits().max_input_bytes)
    outcome = function_env.deliver("at-limit.jpg")
    assert outcome.record["outcome"] == "quarantine" and outcome.record["reasons"][0]["code"] == "not_an_image"
    [copy] = outcome.record["destinations"]
    assert function_env.blob_service.get_blob_client(*copy.split("/", 1)).get_blob_properties().size == \
        Limits().max_input_bytes


def test_an_image_smaller_than_the_first_range_is_read_in_one_storage_call(function_env, monkeypatch):
    from azure.storage.blob import BlobClient

    data = scene("city")
    assert len(data) < FIRST_READ_BYTES
    function_env.upload("small.jpg", data)
    reads = []
    original = BlobClient.download_blob

    def counted(self, *args, **kwargs):
        if self.container_name == function_env.incoming:
            reads.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BlobClient, "download_blob", counted)
    outcome = function_env.deliver("small.jpg")
    assert len(reads) == 1 and outcome.record["outcome"] == "accepted"
    assert outcome.record["blob"]["size"] == len(data)


def test_an_empty_upload_is_read_through_its_properties_and_quarantined_as_empty(function_env):
    """The service refuses a ranged read of an empty blob (416); the trigger takes its version from its properties."""
    function_env.upload("empty.jpg", b"")
    outcome = function_env.deliver("empty.jpg")
    assert outcome.record["outcome"] == "quarantine" and outcome.record["reasons"][0]["code"] == "empty"
    assert outcome.record["blob"]["size"] == 0 and outcome.record["blob"]["etag"] == \
        function_env.blob_service.get_blob_client(function_env.incoming, "empty.jpg").get_blob_properties().etag


def test_a_backlog_message_for_an_upload_above_the_input_limit_is_quarantined_by_its_size_alone(function_env):
    """The backlog queue reads the blobs it is told about through the same ranged reads as the blob trigger."""
    import azure.functions as func
    from fn_helpers import registered

    from functions.backlog_message import BacklogItem
    from functions.handler import observe

    upload_zeros(function_env, "old/huge.jpg", SIZE)
    seen = []
    tracemalloc.start()
    try:
        with observe(seen.append):
            body = BacklogItem(function_env.incoming, "old/huge.jpg").encode().encode()
            registered("route_backlog_blob")(func.QueueMessage(id="m1", body=body))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * MiB, f"routing a {SIZE:,}-byte backlog blob allocated {peak:,} bytes"
    [outcome] = seen
    assert outcome.record["reasons"][0]["code"] == "too_large" and outcome.record["destinations"] == []

"""The backlog (`cvops classify-backlog` + the queue trigger) and `cvops function run-local`, on Azurite."""

from __future__ import annotations

import threading
import time

import azure.functions as func
import pytest
from azure.storage.queue import QueueServiceClient
from fn_helpers import registered, scene

from functions.backlog_message import BacklogItem
from functions.handler import observe
from pipelines.backlog import backlog_queue_client, enqueue_backlog
from pipelines.run_local import run_local


@pytest.fixture
def queue_env(function_env, azurite):
    """The app with a storage connection that also has the queue endpoint, and its own backlog queue."""
    queue_name = f"{function_env.incoming}-q"
    function_env.set(CVOPS_STORAGE=azurite.connection_string,
                     CVOPS_BACKLOG_QUEUE=queue_name)
    service = QueueServiceClient.from_connection_string(function_env.settings["CVOPS_STORAGE"])
    function_env.queue = backlog_queue_client(service, queue_name)
    yield function_env
    function_env.queue.delete_queue()


def test_classify_backlog_enqueues_one_message_per_blob_even_one_named_like_a_sidecar(queue_env):
    # Backlog messages may name only the incoming container (see functions.backlog_message.refusal), whose blobs the
    # loop also delivers through the blob trigger: each version still gets exactly one record.
    container = queue_env.incoming
    for i in range(5):
        queue_env.upload(f"2024/{i}.jpg", scene("beach", seed=i))
    # outputs never share the incoming container (the app refuses such settings), so a blob named like a sidecar here
    # is somebody's upload like any other: it is queued and routed (to quarantine: it is not an image)
    queue_env.upload("2024/0.jpg.cvops.json", b"{}")
    queue_env.upload("2023/old.jpg", scene("city"))
    result = enqueue_backlog(queue_env.blob_service, queue_env.queue, container, prefix="2024/", concurrency=3)
    assert (result.listed, result.enqueued) == (6, 6)
    assert queue_env.queue.get_queue_properties().approximate_message_count == 6

    stats = run_local(once=True, poll_seconds=0.05)
    assert stats.queue_messages == 6 and stats.failed == 0
    assert {r["outcome"] for r in queue_env.records() if r["blob"]["name"] == "2024/0.jpg.cvops.json"} == {"quarantine"}
    names = [r["blob"]["name"] for r in queue_env.records() if r["blob"]["name"].startswith("2024/")
             and r["blob"]["name"].endswith(".jpg")]
    assert sorted(names) == [f"2024/{i}.jpg" for i in range(5)]
    assert queue_env.queue.get_queue_properties().approximate_message_count == 0


def test_a_backlog_message_delivered_twice_gives_one_outcome(queue_env):
    queue_env.upload("twice.jpg", scene("forest"))
    message = BacklogItem(queue_env.incoming, "twice.jpg").encode().encode()
    seen = []
    with observe(seen.append):
        for i in range(2):
            registered("route_backlog_blob")(func.QueueMessage(id=f"m{i}", body=message))
    assert [o.duplicate for o in seen] == [False, True]
    assert len(queue_env.records()) == 1


def test_a_malformed_or_stale_backlog_message_is_dropped_without_retries(queue_env, caplog):
    registered("route_backlog_blob")(func.QueueMessage(id="bad", body=b"not json"))
    registered("route_backlog_blob")(func.QueueMessage(
        id="gone", body=BacklogItem(queue_env.incoming, "deleted.jpg").encode().encode()))
    assert "refusing backlog message bad" in caplog.text and "no longer exists" in caplog.text
    assert [r["code"] for r in queue_env.records()] == ["invalid_message"]  # a refusal record, no image record


def test_run_local_delivers_new_blobs_once_and_a_second_run_finds_them_decided(function_env):
    for i, label in enumerate(("beach", "forest", "city")):
        function_env.upload(f"in/{i}.jpg", scene(label, seed=40 + i))
    first = run_local(once=True, backlog_queue=False)
    assert (first.delivered, first.succeeded, first.failed) == (3, 3, 0)
    second = run_local(once=True, backlog_queue=False)
    assert second.duplicates == 3
    assert len(function_env.records()) == 3


def test_run_local_poisons_a_blob_after_the_hosts_threshold(function_env):
    function_env.set(VISION_PREDICTION_KEY="wrong")
    function_env.upload("p.jpg", scene("city"))
    stats = run_local(once=True, backlog_queue=False)
    assert stats.poisoned == ["p.jpg"] and stats.failed == 5
    assert function_env.records() == []


def test_run_local_keeps_watching_until_stopped(function_env):
    stop = threading.Event()
    results = {}
    thread = threading.Thread(target=lambda: results.update(stats=run_local(stop_event=stop, poll_seconds=0.05,
                                                                            backlog_queue=False)))
    thread.start()
    try:
        function_env.upload("late.jpg", scene("beach"))
        deadline = time.monotonic() + 20
        while not function_env.names("results") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert results["stats"].succeeded == 1 and len(function_env.records()) == 1

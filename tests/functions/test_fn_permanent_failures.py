"""Permanent failures are refused once, on record, instead of being retried five times into a poison queue.

Each case goes through the registered functions on real Azurite: backlog messages through a real storage queue and
`run_local` (which plays the host: retries, dequeue counts, poison queue), so "one attempt" is what the host's own
bookkeeping shows; the blob trigger by calling it with the BlobClient the worker builds.
"""

from __future__ import annotations

import contextlib
import json
import logging

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueServiceClient
from fn_helpers import registered, scene

from functions.backlog_message import BacklogItem, refusal
from functions.handler import observe
from pipelines.backlog import backlog_queue_client
from pipelines.run_local import run_local


@pytest.fixture
def queue_env(function_env, azurite):
    """The app with its own backlog queue on Azurite."""
    queue_name = f"{function_env.incoming}-q"
    function_env.set(CVOPS_BACKLOG_QUEUE=queue_name)
    service = QueueServiceClient.from_connection_string(function_env.settings["CVOPS_STORAGE"])
    function_env.queue = backlog_queue_client(service, queue_name)
    function_env.poison = service.get_queue_client(f"{queue_name}-poison")
    yield function_env
    function_env.queue.delete_queue()
    with contextlib.suppress(ResourceNotFoundError):
        function_env.poison.delete_queue()


def refusals(env) -> list[dict]:
    client = env.blob_service.get_container_client(env.containers["results"])
    return [json.loads(client.download_blob(b.name).readall()) for b in client.list_blobs(name_starts_with="refused/")]


def image_records(env) -> list[str]:
    return [n for n in env.names("results") if not n.startswith("refused/")]


def deliver_through_the_queue(env, body: str):
    """Send ``body`` on the backlog queue and let run-local deliver it as the host would (with its retries)."""
    env.queue.send_message(body)
    stats = run_local(once=True, poll_seconds=0.05, backlog_queue=True)
    assert env.queue.peek_messages(max_messages=1) == []  # completed, not left for a retry
    return stats


def assert_refused_once(env, stats, code: str) -> dict:
    # one delivery of the message, and it succeeded (blobs of the incoming container, if any, are delivered too)
    assert (stats.queue_messages, stats.succeeded - stats.delivered, stats.failed, stats.poisoned) == (1, 1, 0, [])
    records = refusals(env)
    assert [r["code"] for r in records] == [code], records
    return records[0]


def test_a_backlog_message_with_an_invalid_container_name_is_refused_once(queue_env, caplog):
    body = BacklogItem("Bad_Container!", "x.jpg").encode()
    with caplog.at_level(logging.ERROR):
        stats = deliver_through_the_queue(queue_env, body)
    record = assert_refused_once(queue_env, stats, "invalid_container")
    assert record["body"] == body and "Bad_Container!" in record["message"]
    assert "refusing backlog message" in caplog.text and "invalid_container" in caplog.text


@pytest.mark.parametrize("template", ["../{accepted}/beach/x.jpg", "a/./../../{accepted}/beach/x.jpg",
                                      "sub/..", "..\\{accepted}\\x.jpg"])
def test_a_backlog_blob_name_with_dot_segments_is_refused_and_reads_nothing(queue_env, template):
    """``incoming/../accepted/beach/x.jpg`` would be normalised to another container's blob and routed."""
    queue_env.upload("x.jpg", scene("beach"), container=queue_env.containers["accepted"])
    name = template.format(accepted=queue_env.containers["accepted"])
    with observe(pytest.fail):  # no image is routed
        stats = deliver_through_the_queue(queue_env, BacklogItem(queue_env.incoming, name).encode())
    assert_refused_once(queue_env, stats, "invalid_blob_name")
    assert image_records(queue_env) == [] and queue_env.names("accepted") == ["x.jpg"]


def test_a_backlog_message_naming_an_output_container_does_not_route_the_apps_own_output_again(queue_env):
    """The reproduction: a message naming ``accepted`` routed ``beach/x.jpg`` to ``accepted/beach/beach/x.jpg``."""
    queue_env.upload("x.jpg", scene("beach", seed=3))
    routed = queue_env.deliver("x.jpg")
    assert routed.record["outcome"] == "accepted"
    copy = routed.record["destinations"][0].split("/", 1)[1]
    before = queue_env.names("accepted")
    stats = deliver_through_the_queue(queue_env, BacklogItem(queue_env.containers["accepted"], copy).encode())
    record = assert_refused_once(queue_env, stats, "output_container")
    assert "CVOPS_ACCEPTED_CONTAINER" in record["message"]
    assert queue_env.names("accepted") == before and len(image_records(queue_env)) == 1


def test_a_backlog_message_naming_another_container_is_refused(queue_env):
    other = f"{queue_env.incoming}-arch"
    queue_env.blob_service.create_container(other)
    try:
        queue_env.upload("private.jpg", scene("city"), container=other)
        stats = deliver_through_the_queue(queue_env, BacklogItem(other, "private.jpg").encode())
        assert_refused_once(queue_env, stats, "not_incoming_container")
        assert image_records(queue_env) == [] and queue_env.names("accepted") == []
    finally:
        queue_env.blob_service.delete_container(other)


def test_a_redelivered_refused_message_converges_on_one_refusal_record(queue_env):
    body = BacklogItem(queue_env.containers["results"], "anything.jsonl").encode().encode()
    for i in range(3):
        registered("route_backlog_blob")(func.QueueMessage(id=f"m{i}", body=body))  # no exception, every time
    records = refusals(queue_env)
    assert len(records) == 1 and records[0]["queue_message_id"] == "m0" and records[0]["code"] == "output_container"


def test_a_message_that_is_not_a_backlog_message_is_refused_on_record(queue_env):
    stats = deliver_through_the_queue(queue_env, "not json")
    record = assert_refused_once(queue_env, stats, "invalid_message")
    assert record["body"] == "not json"


def test_a_blob_deleted_before_the_trigger_could_read_it_is_one_successful_attempt(function_env, caplog):
    """The trigger gets a client, not bytes; the blob is gone by the time it reads. Retrying cannot bring it back."""
    function_env.upload("gone.jpg", scene("forest"))
    client = function_env.client("gone.jpg")
    function_env.blob_service.get_blob_client(function_env.incoming, "gone.jpg").delete_blob()
    with caplog.at_level(logging.WARNING), observe(pytest.fail):
        registered("route_new_blob")(client)  # returns: the host records one successful attempt, no retry
    assert "was deleted before it could be read" in caplog.text and "gone.jpg" in caplog.text
    assert function_env.names("results") == [] and function_env.names("quarantine") == []


@pytest.mark.parametrize("container, name, code", [
    ("incoming", "ok/x.jpg", None),
    ("incoming", "x" * 1025, "invalid_blob_name"),
    ("incoming", "..", "invalid_blob_name"),
    ("incoming", "a..b/c.d/.e", None),
    ("results", "x.jsonl", "output_container"),
    ("in", "x.jpg", "invalid_container"),
    ("in--coming", "x.jpg", "invalid_container"),
    ("archive", "x.jpg", "not_incoming_container"),
])
def test_which_backlog_messages_are_refused(container, name, code):
    why = refusal(BacklogItem(container, name), incoming="incoming", outputs={"results": "CVOPS_RESULTS_CONTAINER"})
    assert (why.code if why else None) == code

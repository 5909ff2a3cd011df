"""Queue trigger: route blobs that existed before the app (a backlog), fanned out by `cvops classify-backlog`.

Event Grid only reports new writes, so existing blobs come through the CVOPS_BACKLOG_QUEUE storage queue, one message
per blob; the Functions host scales the queue trigger out over instances, so millions of blobs do not depend on one
machine. Each message runs the same handler as the blob trigger, keyed by the blob's current ETag, so a message
delivered twice, or a blob also seen by the blob trigger, still gives one outcome. Transient failures propagate (the
host retries the message, then moves it to ``<queue>-poison`` after ``maxDequeueCount``).

Permanent failures are refused once, not retried to the poison queue: a message that is not a backlog message, or
that names anything but a blob of the incoming container by a usable name (see
:func:`functions.backlog_message.refusal`; the service's 400 for a name it will not take counts too). "Refused" means
an error log line and a refusal record, ``<results>/refused/backlog/<sha256 of the message>.json``, created only if
absent: there is no image to quarantine (nothing was read, on purpose), yet a refusal must outlive the log's
retention and be countable, and keying it by the message's bytes makes a redelivered message converge on the same
record. The record sits outside the ``date=`` partitions, so the per-image results table is not polluted by
messages that named no image of ours. A blob deleted since it was listed is only logged: it is gone (most often moved
after routing by ``CVOPS_MOVE_SOURCE``), and the delivery that routed it wrote its record.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from datetime import UTC, datetime

import azure.functions as func
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import ContentSettings

from cvops import finite_json
from functions import context, routes, settings
from functions.backlog_message import BacklogItem, Refusal, refusal
from functions.blob_reader import read_new_blob
from functions.context import AppContext
from functions.handler import process_blob

__all__ = ["REFUSAL_SCHEMA", "refusal_blob_name", "route_backlog_blob"]

bp = func.Blueprint()
log = logging.getLogger("cvops.functions")

REFUSAL_SCHEMA = "cvops.backlog-refusal/1"


def refusal_blob_name(ctx: AppContext, body: bytes) -> str:
    """The refusal record's blob in the results container: one per distinct message body (redeliveries converge)."""
    return ctx.config.results.blob("refused", "backlog", f"{hashlib.sha256(body).hexdigest()[:32]}.json")


def _refuse(ctx: AppContext, message: func.QueueMessage, body: bytes, why: Refusal) -> None:
    """Log the refusal and create its record if absent; the invocation then succeeds (the host deletes the message).

    A storage failure while writing the record propagates, so the host retries and the refusal is not lost.
    """
    text = body.decode("utf-8", errors="replace")
    log.error("refusing backlog message %s (%s): %s", message.id, why.code, why.message)
    name = refusal_blob_name(ctx, body)
    record = {"schema": REFUSAL_SCHEMA, "code": why.code, "message": why.message, "queue": ctx.config.backlog_queue,
              "queue_message_id": message.id, "body": text[:4096], "body_sha256": hashlib.sha256(body).hexdigest(),
              "refused_at": datetime.now(UTC).isoformat()}
    with contextlib.suppress(ResourceExistsError):  # a redelivery of the same message: the first refusal stands
        ctx.blob_service.get_blob_client(ctx.config.results.container, name).upload_blob(
            finite_json.dumps(record, ensure_ascii=False).encode("utf-8"), overwrite=False,
            content_settings=ContentSettings(content_type="application/json; charset=utf-8"))


@bp.queue_trigger(arg_name="message", queue_name="%CVOPS_BACKLOG_QUEUE%", connection=settings.STORAGE_CONNECTION)
def route_backlog_blob(message: func.QueueMessage) -> None:
    """Read the named blob and route it like a new one; refuse, once and on record, a message naming anything else."""
    body = message.get_body() or b""
    ctx = context.current()  # a configuration error propagates: the message is fine, the app is not
    try:
        item = BacklogItem.decode(body.decode("utf-8", errors="replace"))
    except ValueError as exc:
        _refuse(ctx, message, body, Refusal("invalid_message", str(exc)))
        return
    config = ctx.config
    outputs = {getattr(config, route.key).container: route.setting for route in reversed(routes.OUTPUTS)}
    why = refusal(item, incoming=config.incoming.container, outputs=outputs)
    if why is not None:
        _refuse(ctx, message, body, why)
        return
    blob = ctx.blob_service.get_blob_client(item.container, item.name)
    try:
        found = read_new_blob(blob)  # ranged reads: a blob above the input limit is refused by its size alone
    except HttpResponseError as exc:
        if exc.status_code != 400:
            raise  # 5xx, 403 (identity or SAS), throttling: the host retries
        _refuse(ctx, message, body, Refusal("invalid_blob_name", f"the storage service refused the name "
                                                                 f"{item.name[:200]!r}: {exc.error_code or 400}"))
        return
    if found is None:
        log.warning("backlog blob %s/%r no longer exists (moved or deleted since it was listed)",
                    item.container, item.name)
        return
    process_blob(found.source, found.data, ctx, refused=found.refused)

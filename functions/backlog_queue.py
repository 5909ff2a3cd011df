"""Queue trigger: route blobs that existed before the app (a backlog), fanned out by `cvops classify-backlog`.

Event Grid only reports new writes, so existing blobs come through the CVOPS_BACKLOG_QUEUE storage queue, one message
per blob; the Functions host scales the queue trigger out over instances, so millions of blobs do not depend on one
machine. Each message runs the same handler as the blob trigger, keyed by the blob's current ETag, so a message
delivered twice, or a blob also seen by the blob trigger, still gives one outcome. Transient failures propagate (the
host retries the message, then moves it to ``<queue>-poison`` after ``maxDequeueCount``).
"""

from __future__ import annotations

import logging

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError

from functions import context, settings
from functions.backlog_message import BacklogItem
from functions.handler import process_blob
from functions.records import SourceRef

bp = func.Blueprint()
log = logging.getLogger("cvops.functions")


@bp.queue_trigger(arg_name="message", queue_name="%CVOPS_BACKLOG_QUEUE%", connection=settings.STORAGE_CONNECTION)
def route_backlog_blob(message: func.QueueMessage) -> None:
    """Read the named blob and route it like a new one."""
    text = message.get_body().decode("utf-8", errors="replace")
    try:
        item = BacklogItem.decode(text)
    except ValueError as exc:
        # Not retryable and not an image: say so once instead of letting the host retry it five times.
        log.error("dropping backlog message %s: %s", message.id, exc)
        return
    ctx = context.current()
    blob = ctx.blob_service.get_blob_client(item.container, item.name)
    try:
        download = blob.download_blob()
        data = download.readall()
    except ResourceNotFoundError:
        log.warning("backlog blob %s/%s no longer exists (moved or deleted since it was listed)",
                    item.container, item.name)
        return
    props = download.properties
    source = SourceRef(container=item.container, name=item.name, etag=props.etag, size=props.size,
                       last_modified=props.last_modified, content_type=props.content_settings.content_type,
                       uri=blob.url)
    process_blob(source, data, ctx)

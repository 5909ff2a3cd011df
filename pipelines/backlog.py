"""`cvops classify-backlog`: put existing blobs on the backlog queue, so the Function App routes them too.

Why a queue and not a loop here: Event Grid only reports new writes, and a backlog can be millions of blobs. One
message per blob lets the Functions host fan the work out over as many instances as the queue length asks for, each
running the same handler as the blob trigger (whose records make a blob routed twice harmless). This side only lists
and sends, a few thousand messages a second with a handful of threads.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from cvops.errors import ConfigurationError
from functions.backlog_message import BacklogItem

__all__ = ["BacklogResult", "backlog_queue_client", "check_queue_name", "enqueue_backlog", "iter_backlog"]

log = logging.getLogger("cvops.backlog")

# Azure Storage queue names: 3-63 characters, lowercase letters, digits and single hyphens, starting and ending
# with a letter or digit.
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")


def check_queue_name(name: str, setting: str = "--queue") -> str:
    """``name`` if Azure Storage accepts it as a queue name, else a ConfigurationError naming ``setting`` (the
    service would answer a bare 400 InvalidResourceName). Pure."""
    if not _QUEUE_NAME.match(name or ""):
        raise ConfigurationError(f"{setting} {name!r} is not a valid queue name", setting=setting,
                                 hint="use 3-63 lowercase letters, digits and single hyphens, e.g. cvops-backlog")
    return name


@dataclass(frozen=True)
class BacklogResult:
    listed: int
    enqueued: int


def backlog_queue_client(queue_service, queue_name: str) -> QueueClient:
    """A client for the backlog queue that encodes as the host expects (host.json ``messageEncoding: base64``);
    the queue is created if missing."""
    client = queue_service.get_queue_client(check_queue_name(queue_name), message_encode_policy=TextBase64EncodePolicy())
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def iter_backlog(blob_service: BlobServiceClient, container: str, prefix: str | None = None) -> Iterator[BacklogItem]:
    """Every blob under ``container/prefix`` as a backlog item. Nothing is skipped: the app's outputs never share its
    incoming container (its settings are refused otherwise), so a blob named like a sidecar here is an upload too."""
    try:
        for blob in blob_service.get_container_client(container).list_blobs(name_starts_with=prefix or None):
            yield BacklogItem(container, blob.name, blob.etag)
    except ResourceNotFoundError as exc:
        raise ConfigurationError(f"container {container!r} does not exist in this storage account",
                                 setting="--container", hint="check the name (cvops lists them with the account)") from exc


def enqueue_backlog(blob_service: BlobServiceClient, queue: QueueClient, container: str, prefix: str | None = None,
                    *, concurrency: int = 8, limit: int | None = None,
                    progress: Callable[[int], None] | None = None) -> BacklogResult:
    """Send one message per blob under ``container/prefix`` to ``queue``; return how many were listed and sent.

    ``limit`` stops after that many blobs (a trial run); ``progress(sent)`` is called every 1,000 messages. Sends run
    on ``concurrency`` threads with at most ``4 x concurrency`` in flight, so memory stays flat for any backlog.
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}", setting="--concurrency")
    listed = sent = 0
    lock = threading.Lock()
    pending: set[Future] = set()

    def send(item: BacklogItem) -> None:
        nonlocal sent
        queue.send_message(item.encode())
        with lock:
            sent += 1
            if progress is not None and sent % 1000 == 0:
                progress(sent)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cvops-backlog") as pool:
        for item in iter_backlog(blob_service, container, prefix):
            if limit is not None and listed >= limit:
                break
            listed += 1
            pending.add(pool.submit(send, item))
            if len(pending) >= 4 * concurrency:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
        for future in pending:
            future.result()
    log.info("enqueued %d of %d blobs from %s/%s on %s", sent, listed, container, prefix or "", queue.queue_name)
    return BacklogResult(listed=listed, enqueued=sent)

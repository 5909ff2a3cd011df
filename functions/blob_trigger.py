"""Blob trigger: every new or changed blob in the incoming container is routed once.

Event Grid source (required on Flex Consumption, low latency, no container scans); the Event Grid subscription
must be filtered to the incoming container so the app's own writes do not trigger it. The container name comes from
the CVOPS_INCOMING_CONTAINER setting and the connection from the CVOPS_STORAGE setting (a connection string, or
``CVOPS_STORAGE__blobServiceUri``/``__queueServiceUri`` with the managed identity).

Failures: transient ones propagate, so the host retries the blob and after ``poisonBlobThreshold`` attempts puts it
on ``webjobs-blobtrigger-poison``; a configuration error propagates too (the image is fine, the app is not). Bad
images are quarantined by the handler and the invocation succeeds. A blob deleted before a trigger without its ETag
could read it again is a permanent condition, not a failure: it is logged and the invocation succeeds at once (see
:func:`source_from_stream` for why nothing is recorded).
"""

from __future__ import annotations

import logging

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError

from functions import context, naming, settings
from functions.handler import parse_time, process_blob, refuse_unaddressable
from functions.records import SourceRef

bp = func.Blueprint()
log = logging.getLogger("cvops.functions")


def source_from_stream(stream: func.InputStream, container: str, data: bytes,
                       ctx: context.AppContext) -> tuple[SourceRef, bytes] | None:
    """The source reference from the trigger's metadata (name is ``container/name``; properties carry the ETag), and
    the bytes that belong to it; None when the blob must be read again and no longer exists.

    If the host gave no ETag or Last-Modified, the blob is read again, bytes and properties in one download (one more
    storage call), so the version and the content cannot come from two different writes. If it is gone by then
    (deleted, or moved by ``CVOPS_MOVE_SOURCE`` after another delivery routed it), retrying cannot bring it back, so
    this is not raised for the host to retry five times. Nothing is recorded: records are keyed by the version's
    ETag, which is unknown here, and a record keyed otherwise would give an image already routed a second outcome;
    the warning log names the blob.
    """
    full = stream.name or ""
    name = full[len(container) + 1:] if full.startswith(f"{container}/") else full
    props = stream.blob_properties or {}
    etag = props.get("ETag") or props.get("Etag") or props.get("etag")
    modified = parse_time(props.get("LastModified") or props.get("Last-Modified") or props.get("lastModified"))
    content_type = props.get("ContentType") or props.get("contentType")
    fetched_again = not etag or modified is None
    if fetched_again:
        # Without the host's ETag, the bytes and the version must come from one read: a properties call after the
        # host's read could describe a newer version than the bytes, and the record would file A's bytes under B's key.
        try:
            download = ctx.blob_service.get_blob_client(container, name).download_blob()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise  # the incoming container itself is gone: the app's configuration, not this blob
            log.warning("%s/%s was deleted before it could be read again (the trigger gave no ETag); "
                        "nothing to route", container, naming.printable(name))
            return None
        log.warning("trigger metadata for %s/%s had no ETag or LastModified; read the blob again with its properties",
                    container, naming.printable(name))
        data = download.readall()
        fetched = download.properties
        etag, modified = fetched.etag, fetched.last_modified
        content_type = content_type or fetched.content_settings.content_type
    source = SourceRef(container=container, name=name, etag=str(etag), size=len(data) if fetched_again else
                       (stream.length or len(data)), last_modified=modified, content_type=content_type, uri=stream.uri)
    return source, data


@bp.blob_trigger(arg_name="blob", path="%CVOPS_INCOMING_CONTAINER%/{name}", connection=settings.STORAGE_CONNECTION,
                 source=func.BlobSource.EVENT_GRID)
def route_new_blob(blob: func.InputStream) -> None:
    """Validate, classify and route one new blob (observers of the handler see its outcome)."""
    ctx = context.current()
    container, full = ctx.config.incoming.container, blob.name or ""
    if refuse_unaddressable(ctx, container, full[len(container) + 1:] if full.startswith(f"{container}/") else full):
        return  # a name that would reach another blob: recorded, never read (functions.naming.unaddressable)
    data = blob.read() or b""
    found = source_from_stream(blob, ctx.config.incoming.container, data, ctx)
    if found is not None:
        process_blob(*found, ctx)

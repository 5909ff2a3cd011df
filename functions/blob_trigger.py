"""Blob trigger: every new or changed blob in the incoming container is routed once.

Event Grid source (required on Flex Consumption, low latency, no container scans); the Event Grid subscription
must be filtered to the incoming container so the app's own writes do not trigger it. The container name comes from
the CVOPS_INCOMING_CONTAINER setting and the connection from the CVOPS_STORAGE setting (a connection string, or
``CVOPS_STORAGE__blobServiceUri``/``__queueServiceUri`` with the managed identity).

Failures: transient ones propagate, so the host retries the blob and after ``poisonBlobThreshold`` attempts puts it
on ``webjobs-blobtrigger-poison``; a configuration error propagates too (the image is fine, the app is not). Bad
images are quarantined by the handler and the invocation succeeds.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions import context, settings
from functions.handler import parse_time, process_blob
from functions.records import SourceRef

bp = func.Blueprint()
log = logging.getLogger("cvops.functions")


def source_from_stream(stream: func.InputStream, container: str, data: bytes, ctx: context.AppContext) -> SourceRef:
    """The source reference from the trigger's metadata (name is ``container/name``; properties carry the ETag).

    If the host gave no ETag or Last-Modified, they are read from the blob (one more storage call).
    """
    full = stream.name or ""
    name = full[len(container) + 1:] if full.startswith(f"{container}/") else full
    props = stream.blob_properties or {}
    etag = props.get("ETag") or props.get("Etag") or props.get("etag")
    modified = parse_time(props.get("LastModified") or props.get("Last-Modified") or props.get("lastModified"))
    content_type = props.get("ContentType") or props.get("contentType")
    if not etag or modified is None:
        fetched = ctx.blob_service.get_blob_client(container, name).get_blob_properties()
        log.warning("trigger metadata for %s/%s had no ETag or LastModified; read them from the blob", container, name)
        etag, modified = etag or fetched.etag, modified or fetched.last_modified
        content_type = content_type or fetched.content_settings.content_type
    return SourceRef(container=container, name=name, etag=str(etag), size=stream.length or len(data),
                     last_modified=modified, content_type=content_type, uri=stream.uri)


@bp.blob_trigger(arg_name="blob", path="%CVOPS_INCOMING_CONTAINER%/{name}", connection=settings.STORAGE_CONNECTION,
                 source=func.BlobSource.EVENT_GRID)
def route_new_blob(blob: func.InputStream) -> None:
    """Validate, classify and route one new blob (observers of the handler see its outcome)."""
    ctx = context.current()
    data = blob.read() or b""
    source = source_from_stream(blob, ctx.config.incoming.container, data, ctx)
    process_blob(source, data, ctx)

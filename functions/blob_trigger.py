"""Blob trigger: every new or changed blob in the incoming container is routed once.

Event Grid source (required on Flex Consumption, low latency, no container scans); the Event Grid subscription
must be filtered to the incoming container so the app's own writes do not trigger it. The container name comes from
the CVOPS_INCOMING_CONTAINER setting and the connection from the CVOPS_STORAGE setting (a connection string, or
``CVOPS_STORAGE__blobServiceUri``/``__queueServiceUri`` with the managed identity).

Why a BlobClient and not the blob's bytes: with an ``InputStream`` parameter the Functions host reads every new blob
whole (up to its 500 MB limit) and sends it to the worker before any check runs, so a few large uploads cost the
instance gigabytes. With the SDK-type binding (``azurefunctions-extensions-bindings-blob``) the host sends only the
blob's coordinates and the worker hands the function a ``BlobClient``, which
:func:`functions.blob_reader.read_new_blob` reads in ranges: a blob above the input limit is refused by its size
alone, and only what will be classified is read, pinned to one version.

Failures: transient ones propagate, so the host retries the blob and after ``poisonBlobThreshold`` attempts puts it
on ``webjobs-blobtrigger-poison``; a configuration error propagates too (the image is fine, the app is not). Bad
images are quarantined by the handler and the invocation succeeds. A blob deleted before the trigger could read it is
a permanent condition, not a failure: it is logged and the invocation succeeds at once (nothing is recorded: records
are keyed by a version's ETag, and no version was read).
"""

from __future__ import annotations

import azure.functions as func
import azurefunctions.extensions.bindings.blob as sdk_blob

from functions import context, settings
from functions.blob_reader import read_new_blob
from functions.handler import process_blob, refuse_unaddressable

__all__ = ["route_new_blob"]

bp = func.Blueprint()


@bp.blob_trigger(arg_name="client", path="%CVOPS_INCOMING_CONTAINER%/{name}", connection=settings.STORAGE_CONNECTION,
                 source=func.BlobSource.EVENT_GRID)
def route_new_blob(client: sdk_blob.BlobClient) -> None:
    """Validate, classify and route one new blob (observers of the handler see its outcome)."""
    ctx = context.current()
    if refuse_unaddressable(ctx, ctx.config.incoming.container, client.blob_name):
        return  # a name that would reach another blob: recorded, never read (functions.naming.unaddressable)
    found = read_new_blob(client)
    if found is not None:
        process_blob(found.source, found.data, ctx, refused=found.refused)

"""Read one version of a blob the app was told about, with ranged reads: never more than it will classify.

Why its own module: both triggers route a blob they are only told the name of (the blob trigger gets a BlobClient,
the backlog queue a message), and neither may read a hostile upload whole. :func:`read_new_blob` reads the first
:data:`FIRST_READ_BYTES` (which also answers the blob's size, ETag and Last-Modified), refuses a blob above
``images.Limits.max_input_bytes`` by that size alone, and reads the rest only of a blob it will classify, each range
pinned to the ETag of the first read, so the bytes and the version always come from one write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient

from cvops.errors import TransientServiceError
from functions import images, naming
from functions.records import SourceRef

__all__ = ["FIRST_READ_BYTES", "NewBlob", "read_new_blob"]

log = logging.getLogger("cvops.functions")

FIRST_READ_BYTES = 2 * 1024 * 1024
"""The size of each ranged read, the first of which also answers the blob's size, ETag and Last-Modified: an image up
to this size costs one storage call, and a blob refused by its size costs this much. Small on purpose: the storage
SDK gathers each response in a list sized by its Content-Length (8 bytes a byte: azure-core's download generator
reports its length to ``list()``), so a 32 MiB read would hold 256 MiB for a moment; 2 MiB reads hold 16 MiB."""
_READ_ATTEMPTS = 3
"""Reads of a blob that keeps being replaced between its first read and the rest (each replacement has its own event)."""


@dataclass(frozen=True)
class NewBlob:
    """One version of the triggering blob: what the handler needs, and why it was not downloaded (if it was not)."""

    source: SourceRef
    data: bytes
    refused: images.Rejection | None = None


def read_new_blob(client: BlobClient, *, limits: images.Limits = images.Limits()) -> NewBlob | None:  # noqa: B008
    """The current version of ``client``'s blob, read in ranges of :data:`FIRST_READ_BYTES`; None when it no longer
    exists.

    A blob larger than ``limits.max_input_bytes`` is not read past its first range: it comes back with ``refused``
    (the rule of :func:`functions.images.input_too_large`) and no bytes. Every range after the first is requested
    with If-Match on the first range's ETag; if the blob was replaced meanwhile it is read again from the start, so
    the bytes always belong to the ETag that keys the record.
    """
    for _ in range(_READ_ATTEMPTS):
        try:
            found = _first_range(client)
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise  # the incoming container itself is gone: the app's configuration, not this blob
            log.warning("%s/%s was deleted before it could be read; nothing to route", client.container_name,
                        naming.printable(client.blob_name))
            return None
        if found is None:
            continue  # empty when first asked, not empty when its properties were read: read it again
        source, head = found
        refused = images.input_too_large(source.size, limits)
        if refused is not None:
            return NewBlob(source, b"", refused)
        chunks, offset = [head], len(head)
        try:
            while offset < source.size:
                part = client.download_blob(offset=offset, length=min(FIRST_READ_BYTES, source.size - offset),
                                            etag=source.etag, match_condition=MatchConditions.IfNotModified).readall()
                chunks.append(part)
                offset += len(part)
        except (ResourceModifiedError, ResourceNotFoundError):
            continue  # replaced or deleted since the first range: read the current version from the start
        return NewBlob(source, b"".join(chunks))
    raise TransientServiceError(f"{client.container_name}/{naming.printable(client.blob_name)} changed between every "
                                f"two reads ({_READ_ATTEMPTS} attempts)", hint="the host retries the blob")


def _first_range(client: BlobClient) -> tuple[SourceRef, bytes] | None:
    """The version's reference and its first bytes, from one ranged read; None if an empty blob changed meanwhile.

    The service refuses a range of an empty blob (416), so an empty blob's reference comes from its properties, which
    must still say 0 bytes (otherwise it is not the blob that was empty, and the caller starts again).
    """
    try:
        first = client.download_blob(offset=0, length=FIRST_READ_BYTES)
    except HttpResponseError as exc:
        if exc.status_code != 416:
            raise
        props = client.get_blob_properties()
        if props.size:
            return None
        return _source(client, props, 0), b""
    return _source(client, first.properties, _total_size(first.properties)), first.readall()


def _source(client: BlobClient, props, size: int) -> SourceRef:
    return SourceRef(container=client.container_name, name=client.blob_name, etag=str(props.etag), size=size,
                     last_modified=props.last_modified, content_type=props.content_settings.content_type,
                     uri=client.url)


def _total_size(props) -> int:
    """The blob's whole size from a ranged download's properties (``Content-Range: bytes 0-N/TOTAL``)."""
    content_range = getattr(props, "content_range", None)
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return int(props.size)

"""Verified copies on Azurite, for both ways the SDK uploads: one Put Blob, and Put Block + Put Block List.

Above the client's ``max_single_put_size`` (64 MiB by default) the SDK uploads in blocks, and the Put Block List
response's Content-MD5 is that of the block list, not of the blob: a check that compares it with the blob's MD5 fails
every large copy. The client here lowers ``max_single_put_size``/``max_block_size`` so a 200 KiB blob takes the block
path and the test stays fast. Corruption in transit is made real by a request hook that flips a byte of the body after
the SDK has computed its MD5, so the service itself sees bytes that do not match.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from cvops.errors import TransientServiceError
from functions.store import BlobStore

SINGLE_PUT_LIMIT = 64 * 1024
BLOCK_SIZE = 32 * 1024
SMALL = 10 * 1024  # one Put Blob
LARGE = 200 * 1024 + 17  # seven Put Blocks (the last one short) and one Put Block List


class Wire:
    """Records each request's kind (blob, block, blocklist) and, when armed, corrupts the next body sent with one."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.corrupt: str | None = None

    def hook(self, request) -> None:
        http = request.http_request
        if http.method != "PUT":
            return
        kind = parse_qs(urlparse(http.url).query).get("comp", ["blob"])[0]
        self.kinds.append(kind)
        if kind == self.corrupt and isinstance(http.data, bytes) and http.data:
            body = bytearray(http.data)
            body[len(body) // 2] ^= 0xFF
            http.data = bytes(body)
            self.corrupt = None


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def container(azurite, wire: Wire) -> Iterator[tuple[BlobStore, BlobServiceClient, str]]:
    """A store on a client that uploads in blocks above 64 KiB, its client, and a fresh container."""
    service = BlobServiceClient.from_connection_string(
        azurite.connection_string, max_single_put_size=SINGLE_PUT_LIMIT, max_block_size=BLOCK_SIZE,
        raw_request_hook=wire.hook)
    name = f"store-{uuid.uuid4().hex[:12]}"
    service.create_container(name)
    wire.kinds.clear()
    try:
        yield BlobStore(service), service, name
    finally:
        service.delete_container(name)


@pytest.mark.parametrize(("size", "kinds"), [
    (SMALL, ["blob"]),
    (LARGE, ["block"] * 7 + ["blocklist"]),
], ids=["single-put", "block-upload"])
def test_verified_copy_is_stored_byte_for_byte_with_its_md5_whichever_way_the_sdk_uploads(container, wire, size, kinds):
    store, service, name = container
    data = os.urandom(size)

    store.put_verified(name, "copy.jpg", data, content_type="image/jpeg", metadata={"cvops_outcome": "routed"})

    assert wire.kinds == kinds
    assert store.calls == 1
    blob = service.get_blob_client(name, "copy.jpg")
    assert blob.download_blob().readall() == data
    properties = blob.get_blob_properties()
    assert bytes(properties.content_settings.content_md5) == hashlib.md5(data).digest()
    assert properties.content_settings.content_type == "image/jpeg"
    assert properties.metadata == {"cvops_outcome": "routed"}


@pytest.mark.parametrize(("size", "corrupt"), [(SMALL, "blob"), (LARGE, "block")], ids=["single-put", "block-upload"])
def test_bytes_changed_in_transit_are_refused_by_the_service_and_nothing_is_stored(container, wire, size, corrupt):
    store, service, name = container
    wire.corrupt = corrupt

    with pytest.raises(TransientServiceError, match=f"copy to {name}/copy.jpg .* changed in transit") as caught:
        store.put_verified(name, "copy.jpg", os.urandom(size), content_type="image/jpeg", metadata={})

    assert wire.corrupt is None, "the hook never corrupted a request: the test would show nothing"
    assert caught.value.status == 400
    assert "blocklist" not in wire.kinds
    with pytest.raises(ResourceNotFoundError):
        service.get_blob_client(name, "copy.jpg").get_blob_properties()

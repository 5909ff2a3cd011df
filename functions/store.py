"""Blob writes of one invocation, each of them safe to repeat, and counted.

Why conditional writes: the result record is created with ``If-None-Match: *``, so of two deliveries of the same
blob version (or a retry whose first answer was lost) exactly one creates it and the other learns it exists and
adopts its decision. Copies are created with ``If-None-Match: *`` too: a copy name follows the blob's name, not its
version, so another version of the same blob (a late retry of an older one, a newer one routed first, a concurrent
one) may already hold it, and a routed copy must never be replaced by other bytes. The create costs no extra call;
only when the name is taken does the caller read the holder's metadata (``cvops_key``: its record key) to tell its
own earlier attempt (done) from another version (which then gets a name of its own). The record is corrected in
place with ``If-Match`` on its ETag, so two deliveries cannot write different corrections.

Each copy is verified on the way in, by the service: every request that carries bytes (the one Put Blob, or each Put
Block of a blob above the client's ``max_single_put_size``) carries their MD5, and the service refuses a request
whose bytes do not match it, so "copied" means "the service holds exactly these bytes" before the source may be
deleted, at no extra storage call. The upload's response is not compared: after a block upload its Content-MD5 is
that of the block list, not the blob.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings, StorageErrorCode

from cvops import finite_json
from cvops.errors import TransientServiceError
from functions.naming import printable
from functions.records import dumps_line

__all__ = ["BlobStore"]


class BlobStore:
    """A thin, counting wrapper over one BlobServiceClient for the writes of one invocation."""

    def __init__(self, service: BlobServiceClient):
        self.service = service
        self.calls = 0

    def _blob(self, container: str, name: str):
        return self.service.get_blob_client(container, name)

    def read_json(self, container: str, name: str) -> dict[str, Any] | None:
        """A sidecar (or any JSON object blob), or None if it does not exist or is not a JSON object: a blob that is
        not ours (bytes of an image, a hand-edited file) must read as "not this version's", never fail every retry."""
        found = self.read_record(container, name)
        return found[0] if found else None

    def read_record(self, container: str, name: str) -> tuple[dict[str, Any], str] | None:
        """(record, ETag) of a JSON blob (a one-record JSON Lines file is one JSON document too); None if it does not
        exist or is not a JSON object."""
        self.calls += 1
        try:
            download = self._blob(container, name).download_blob()
            raw = download.readall()
        except ResourceNotFoundError:
            return None
        try:
            value = json.loads(raw.decode("utf-8"))  # a one-line JSON Lines record or an indented sidecar
        except (UnicodeDecodeError, ValueError):
            return None
        return (value, str(download.properties.etag)) if isinstance(value, dict) else None

    def create_record(self, container: str, name: str, record: dict[str, Any]) -> str | None:
        """Create the record only if absent and return its ETag; None when it already exists (a duplicate or a
        concurrent delivery)."""
        self.calls += 1
        try:
            answer = self._blob(container, name).upload_blob(
                dumps_line(record), overwrite=False,
                content_settings=ContentSettings(content_type="application/x-ndjson; charset=utf-8"))
        except ResourceExistsError:
            return None
        return str(answer["etag"])

    def replace_record(self, container: str, name: str, record: dict[str, Any], etag: str | None) -> bool:
        """Overwrite the record only if it still has ``etag`` (If-Match); False when it changed (or is gone) since."""
        self.calls += 1
        if etag is None:
            return False
        try:
            self._blob(container, name).upload_blob(
                dumps_line(record), overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified,
                content_settings=ContentSettings(content_type="application/x-ndjson; charset=utf-8"))
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def metadata(self, container: str, name: str) -> dict[str, str] | None:
        """A blob's metadata (who wrote a copy), or None if it does not exist."""
        self.calls += 1
        try:
            return dict(self._blob(container, name).get_blob_properties().metadata or {})
        except ResourceNotFoundError:
            return None

    def put_verified(self, container: str, name: str, data: bytes, *, content_type: str | None,
                     metadata: dict[str, str]) -> bool:
        """Create the blob with ``data`` unless a blob of that name exists (If-None-Match: *; False then, nothing
        written); the service refuses it unless it received exactly these bytes.

        ``validate_content`` puts each request's MD5 in its Content-MD5 header, which the service checks for Put Blob
        and for every Put Block alike; the committed block list names only blocks that passed. The whole-blob MD5 is
        also stored as the blob's Content-MD5 so later readers can check their download.
        """
        self.calls += 1
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        blob = self._blob(container, name)
        # One Put Blob: the service checks the body against the blob's Content-MD5 we send, so the SDK need not hash
        # the bytes a second time. Block uploads: only per-request MD5s (validate_content) protect each block.
        blocks = len(data) > blob._config.max_single_put_size
        try:
            blob.upload_blob(
                data, overwrite=False, metadata=metadata, validate_content=blocks,
                content_settings=ContentSettings(content_type=content_type, content_md5=bytearray(md5)))
        except ResourceExistsError:
            return False
        except HttpResponseError as exc:
            if exc.error_code != StorageErrorCode.MD5_MISMATCH:
                raise
            raise TransientServiceError(
                f"copy to {container}/{printable(name)} (MD5 {base64.b64encode(md5).decode()}) was refused by the service: "
                "the bytes it received do not match their MD5, they changed in transit",
                code=str(exc.error_code), status=exc.status_code,
                hint="the invocation fails so the host retries it; the source is left in place") from exc
        return True

    def put_json(self, container: str, name: str, record: dict[str, Any]) -> None:
        self.calls += 1
        self._blob(container, name).upload_blob(
            finite_json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8"), overwrite=True,
            content_settings=ContentSettings(content_type="application/json; charset=utf-8"))

    def delete_version(self, container: str, name: str, etag: str) -> bool:
        """Delete the blob only if it is still the version we processed; False if it is gone or was replaced."""
        self.calls += 1
        try:
            self._blob(container, name).delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            return False
        return True

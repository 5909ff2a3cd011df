"""The backlog queue's message: which blob to route. Written by `cvops classify-backlog`, read by the queue trigger.

Why a tiny JSON object and not the blob's URL: the handler reads the blob with the app's own identity, so no SAS
travels through the queue (the message still names the container, so a wrong one is refused with its name).
The ETag seen at listing time is informational: the handler routes whatever version is there when the message is
processed, keyed by that version's ETag, so a message delivered twice still gives one outcome.

Which blobs a message may name (:func:`refusal`): only blobs of the app's incoming container, by a name the service
would store. Anyone who can write to the queue could otherwise make the app copy a blob of any container (a private
one, or its own ``accepted``/``results`` output, which it would route again as ``accepted/beach/beach/...``) into
the outputs its readers see; and a ``.``/``..`` path segment is resolved by URL normalisation before the request
reaches the service, so ``../other/x.jpg`` would read another container's blob. These are permanent: retrying
cannot make them right, so they are refused once instead of being retried to the poison queue.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from functions.naming import unaddressable

__all__ = ["MAX_BLOB_NAME", "BacklogItem", "Refusal", "refusal"]

VERSION = 1
MAX_BLOB_NAME = 1024  # characters (Azure's limit for a blob name)
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class BacklogItem:
    container: str
    name: str
    etag: str | None = None

    def encode(self) -> str:
        body = {"v": VERSION, "container": self.container, "name": self.name}
        if self.etag:
            body["etag"] = self.etag
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    @classmethod
    def decode(cls, text: str) -> BacklogItem:
        """Parse a message; ValueError saying what is wrong with it."""
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"backlog message is not JSON ({exc.msg}): {text[:200]!r}") from exc
        if not isinstance(body, dict):
            raise ValueError(f"backlog message is not a JSON object: {text[:200]!r}")
        container, name = body.get("container"), body.get("name")
        if not isinstance(container, str) or not container or not isinstance(name, str) or not name:
            raise ValueError(f"backlog message needs non-empty 'container' and 'name': {text[:200]!r}")
        etag = body.get("etag")
        return cls(container, name, etag if isinstance(etag, str) and etag else None)


@dataclass(frozen=True)
class Refusal:
    """Why a backlog message is refused for good: a stable ``code`` for queries and a one-line ``message``."""

    code: str
    message: str


def refusal(item: BacklogItem, *, incoming: str, outputs: Mapping[str, str] | None = None) -> Refusal | None:
    """None when ``item`` names a blob the app may route; else why not. Pure.

    ``incoming`` is the incoming container; ``outputs`` maps each output container to the setting that names it (so
    the message can say which of the app's own outputs was named).
    """
    container, name = item.container, item.name
    if not _CONTAINER.match(container):
        return Refusal("invalid_container", f"container {container[:100]!r} is not a valid blob container name "
                                            "(3-63 lowercase letters, digits and single hyphens)")
    if container in (outputs or {}):
        return Refusal("output_container", f"container {container!r} is the app's output ({outputs[container]}); "
                                           "routing it would route the app's own output again")
    if container != incoming:
        return Refusal("not_incoming_container", f"container {container!r} is not the incoming container "
                                                 f"{incoming!r}; the backlog routes only blobs of the incoming container")
    if len(name) > MAX_BLOB_NAME:
        return Refusal("invalid_blob_name", f"blob name is {len(name)} characters, above Azure's {MAX_BLOB_NAME}")
    why = unaddressable(name)
    if why is not None:
        return Refusal("invalid_blob_name", why)
    return None

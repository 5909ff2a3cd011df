"""The backlog queue's message: which blob to route. Written by `cvops classify-backlog`, read by the queue trigger.

Why a tiny JSON object and not the blob's URL: the handler reads the blob with the app's own identity, so no SAS
travels through the queue, and the container may be any container of the account (a backlog is often an archive).
The ETag seen at listing time is informational: the handler routes whatever version is there when the message is
processed, keyed by that version's ETag, so a message delivered twice still gives one outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["BacklogItem"]

VERSION = 1


@dataclass(frozen=True)
class BacklogItem:
    container: str
    name: str
    etag: str | None = None

    def encode(self) -> str:
        body = {"v": VERSION, "container": self.container, "name": self.name}
        if self.etag:
            body["etag"] = self.etag
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

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

"""Where things are written: destination containers and prefixes, copy names, and the key of a result record.

Why keyed by name + ETag: the blob trigger delivers at least once, and a blob overwritten under the same name is a
new image. Every write derived from one (name, ETag) pair goes to the same blob names, so a duplicate delivery or a
rerun after a crash writes the same places (and finds the record already there) instead of adding a second outcome,
while a new ETag gets a record of its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cvops.errors import ConfigurationError

__all__ = ["Location", "copy_name", "record_key", "result_blob_name", "sidecar_name"]

_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
SIDECAR_SUFFIX = ".cvops.json"


@dataclass(frozen=True)
class Location:
    """A container and an optional prefix inside it, from a setting such as ``review`` or ``outputs/review``."""

    container: str
    prefix: str = ""

    @classmethod
    def parse(cls, value: str, setting: str) -> Location:
        """``container[/prefix]``; a ConfigurationError naming ``setting`` when the container name is not valid."""
        container, _, prefix = value.strip().strip("/").partition("/")
        if not _CONTAINER.match(container):
            raise ConfigurationError(
                f"{setting}={value!r}: {container!r} is not a valid blob container name", setting=setting,
                hint="use 3-63 lowercase letters, digits and single hyphens, optionally followed by /prefix")
        prefix = prefix.strip("/")
        return cls(container, f"{prefix}/" if prefix else "")

    def blob(self, *parts: str) -> str:
        return self.prefix + "/".join(p.strip("/") for p in parts if p)

    def __str__(self) -> str:
        return f"{self.container}/{self.prefix}" if self.prefix else self.container


def record_key(name: str, etag: str) -> str:
    """A stable, URL-safe id for one version of one blob (32 hex digits of SHA-256 over name and ETag)."""
    return hashlib.sha256(f"{name}\n{etag.strip(chr(34))}".encode()).hexdigest()[:32]


def result_blob_name(results: Location, name: str, etag: str, arrived: datetime) -> str:
    """The result record's blob: one small JSON Lines file per (name, ETag), partitioned by the day the blob arrived.

    The date is the blob's own Last-Modified, not the time of processing, so a rerun computes the same name.
    ``date=YYYY-MM-DD`` is the Hive-style partition Spark, Synapse serverless SQL and Power BI folder queries read.
    """
    # In UTC: the host's metadata and the SDK may give the same instant with different offsets, and one version must
    # always map to one record name.
    return results.blob(f"date={arrived.astimezone(UTC):%Y-%m-%d}", f"{record_key(name, etag)}.jsonl")


def safe_tag(tag: str) -> str:
    """A tag as one path segment: slashes and backslashes would make folders of their own."""
    cleaned = re.sub(r"[/\\]+", "_", tag).strip(". ")
    return cleaned or "_"


def copy_name(location: Location, name: str, tag: str | None = None) -> str:
    """Where the routed copy of ``name`` goes: ``<prefix><tag>/<name>`` for accepted tags, ``<prefix><name>`` else."""
    return location.blob(safe_tag(tag), name) if tag is not None else location.blob(name)


def sidecar_name(copy: str) -> str:
    """The result record beside a copy (a suffix that image listings and training lint can skip)."""
    return copy + SIDECAR_SUFFIX

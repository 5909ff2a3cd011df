"""The result record: one JSON object per decision, the app's only output that people and query engines read.

Why its own module and a pure builder: the record is a contract (Power BI reports, Synapse views and the review UI
read its fields), so its shape is built in one place from plain data, tested without services, and passed through
:func:`cvops.redaction.redact` so no credential that leaked into an error message reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cvops import finite_json
from cvops.redaction import redact, strip_query
from functions.policy import Decision, Policy

__all__ = ["MAX_SLICE_DEPTH", "RECORD_SCHEMA", "SourceRef", "build_record", "dumps_line", "source_slice"]

RECORD_SCHEMA = "cvops.result/2"
"""Version 2 added what monitoring reads (``cvops monitor``): ``blob.slice``, and in ``image`` the luminance mean and
spread (``luminance_mean``, ``luminance_std``, ``luminance_from``) and the EXIF camera (``exif``). Every field of
version 1 is where it was, so readers of version 1 read version 2; readers of version 2 treat the new fields as
absent (None) in a version-1 record."""
MAX_SLICE_DEPTH = 16
"""The deepest slice (``CVOPS_SLICE_DEPTH``) a record names: folders of the blob name."""


def source_slice(name: str, depth: int) -> str:
    """The slice a blob's record belongs to: the first ``depth`` folders of its name, with the trailing slash
    (``site-3/``, ``site-3/camera-b/``); "" for a name with no folder.

    Why in the record: images from one camera, site or seller usually arrive under one prefix, and a drift there is
    diluted to nothing in the total; a query engine groups by this field without parsing names. ``cvops monitor
    --by prefix`` slices by the same rule (it reads the name, so any depth can be asked of old records too).
    """
    folders = name.split("/")[:-1]
    return "/".join(folders[:depth]) + "/" if folders else ""


@dataclass(frozen=True)
class SourceRef:
    """The blob a decision is about: container, name (inside the container), ETag, size, arrival time."""

    container: str
    name: str
    etag: str
    size: int
    last_modified: datetime
    content_type: str | None = None
    uri: str | None = None


def build_record(
    *,
    key: str,
    source: SourceRef,
    decision: Decision,
    policy: Policy,
    destinations: Sequence[str],
    placement: Sequence[Mapping[str, Any]] = (),
    image: Mapping[str, Any] | None = None,
    predictions: Sequence[Mapping[str, Any]] | None = None,
    model: Mapping[str, Any] | None = None,
    moderation: Mapping[str, Any] | None = None,
    timings_ms: Mapping[str, float] | None = None,
    errors: Sequence[str] = (),
    processed_at: datetime | None = None,
    slice_depth: int = 1,
) -> dict[str, Any]:
    """One record as plain JSON-ready data. Field order is stable (people read these files too).

    ``placement`` says where and why a destination differs from the plain copy name: ``name_shortened`` (the escaped
    name did not fit Azure's 1,024 characters; the full name is ``blob.name``) or ``name_taken`` (another version of
    the blob already held the plain name, so this version has a name of its own: a routed copy is never replaced).
    ``slice_depth``: folders of the blob name in ``blob.slice`` (:func:`source_slice`; ``CVOPS_SLICE_DEPTH``).
    """
    processed = (processed_at or datetime.now(UTC)).astimezone(UTC)
    return {
        "schema": RECORD_SCHEMA,
        "key": key,
        "blob": {
            "container": source.container,
            "name": source.name,
            "etag": source.etag,
            "size": source.size,
            "last_modified": source.last_modified.astimezone(UTC).isoformat(),
            "content_type": source.content_type,
            "uri": strip_query(source.uri),
            "slice": source_slice(source.name, slice_depth),
        },
        "outcome": decision.outcome,
        "tags": list(decision.tags),
        "reasons": [{**r, "message": redact(r["message"])} for r in decision.to_dict()["reasons"]],
        "destinations": list(destinations),
        "placement": [dict(p) for p in placement],
        "image": dict(image) if image else None,
        "predictions": [dict(p) for p in predictions] if predictions is not None else None,
        "model": dict(model) if model else None,
        "moderation": dict(moderation) if moderation else None,
        "policy": {"version": policy.version, "sha256": policy.sha256,
                   "classification_type": policy.classification_type},
        "timings_ms": {k: round(v, 2) for k, v in (timings_ms or {}).items()},
        "errors": [redact(e) for e in errors],
        "processed_at": processed.isoformat(),
    }


def dumps_line(record: Mapping[str, Any]) -> bytes:
    """The record as one JSON Lines line (UTF-8, newline-terminated), strict JSON (:mod:`cvops.finite_json`)."""
    return (finite_json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

"""Undo a person's last decision within a short window: a new record, never an edit of the old one.

Why a new record and a new key: a decision record is created once (``If-None-Match: *``) and is the intent every
later attempt completes (:mod:`pipelines.review.decisions`); editing or deleting it would let a retried form post or
a second reviewer decide twice. So an undo is recorded beside it, once, and the image comes back to review as a new
item whose key follows from the old one (:func:`undone_key`), which can then be decided afresh with the same
exactly-once rule. The old decision stays as it was written; :func:`pipelines.review.decisions.list_decisions` leaves
out a decision that has an undo record, so neither the export nor the stats count it.

The protocol (each step idempotent, so an undo interrupted anywhere is completed by the next call for that key):

1. Refuse unless the decision exists, was made by this reviewer, less than :data:`UNDO_WINDOW` ago, and its image
   has moved (a pending move is completed first). The undo record ``<results>/reviews/<key>.undo.json`` is then
   created with ``If-None-Match: *``: of two undos (a double press, two tabs) exactly one is recorded; the other is
   told it was already undone.
2. The image's bytes are read from a destination copy this decision made (its metadata names the decision) and
   created in review under the original copy's name with ``If-None-Match: *``, MD5 verified, carrying the new key;
   then the record beside it: the app's record with the new key and ``undo_of``.
3. Only then the decision's copies (and their records) are deleted, each only if it is still the decision's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from cvops.errors import CvopsError
from functions import naming
from functions.store import BlobStore
from pipelines.review.decisions import DECISION_SCHEMA, UNDO, _complete, check_reviewer
from pipelines.review.items import DECISIONS_FOLDER, KEY_PATTERN, ReviewConfig, check_key, parse_time

__all__ = ["UNDO_WINDOW", "UndoRefused", "UndoResult", "complete_pending_undos", "undo", "undo_blob_name",
           "undone_key"]

UNDO_WINDOW = timedelta(seconds=60)
"""How long after a decision its reviewer may take it back: long enough to notice a wrong key, short enough that the
image has not yet gone into an export."""


class UndoRefused(ValueError):
    """An undo that cannot be done, with a sentence saying why (shown to the reviewer as it is)."""


@dataclass(frozen=True)
class UndoResult:
    """A completed undo: the undo record, and the key under which the image waits in review again."""

    record: dict[str, Any]
    new_key: str


def undone_key(key: str) -> str:
    """The review key of an image brought back by undoing the decision on ``key``: derived from it alone (so every
    attempt of one undo restores the same item), 32 hex digits like every record key, never equal to it."""
    return hashlib.sha256(f"{check_key(key)}\nundo".encode()).hexdigest()[:32]


def undo_blob_name(config: ReviewConfig, key: str) -> str:
    """``<prefix>reviews/<key>.undo.json``: beside the decision, named from its key, so one undo per decision."""
    return config.results.blob(DECISIONS_FOLDER, f"{check_key(key)}.undo.json")


def _age(decision: dict[str, Any], now: datetime) -> timedelta | None:
    decided = parse_time(decision.get("decided_at"))
    return None if decided is None else now - decided


def undo(blob_service: BlobServiceClient, config: ReviewConfig, key: str, *, reviewer: str,
         now: datetime | None = None, window: timedelta = UNDO_WINDOW) -> UndoResult:
    """Take back the decision on ``key`` (see the module docstring). UndoRefused, with the reason, when it is not
    this reviewer's, older than ``window``, already undone, or its image cannot be brought back."""
    check_key(key)
    reviewer = check_reviewer(reviewer)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    store = BlobStore(blob_service)
    found = store.read_record(config.results.container, config.decision_name(key))
    if found is None or found[0].get("schema") != DECISION_SCHEMA:
        raise UndoRefused("there is no decision on that image to undo")
    decision, etag = found
    earlier = store.read_record(config.results.container, undo_blob_name(config, key))
    if earlier is not None:
        _restore(store, config, decision, earlier[0])  # completes an undo a crash interrupted; nothing when done
        raise UndoRefused("that decision was already undone (a decision is undone once)")
    if decision.get("reviewer") != reviewer:
        raise UndoRefused(f"that decision is {naming.printable(str(decision.get('reviewer')))}'s: only the person "
                          "who decided can undo it")
    age = _age(decision, now)
    if age is None or age > window or age < -window:
        seconds = "an unknown time" if age is None else f"{int(age.total_seconds())} s"
        raise UndoRefused(f"that decision was made {seconds} ago: a decision can be undone for "
                          f"{int(window.total_seconds())} s after it is made")
    decision, moved = _complete(store, config, decision, etag)
    if not moved:
        raise UndoRefused("that image's move is not complete (its review copy changed since the decision): it is "
                          "left for a person to check")
    record = {
        "schema": DECISION_SCHEMA,
        "key": key,
        "decision": UNDO,
        "undoes": key,
        "reviewer": reviewer,
        "decided_at": now.isoformat(),
        "undone": {"reviewer": decision.get("reviewer"), "decided_at": decision.get("decided_at"),
                   "decision": decision.get("decision"), "tags": decision.get("tags")},
        "new_key": undone_key(key),
        "review_copy": {"container": decision["review_copy"]["container"], "name": decision["review_copy"]["name"]},
        "removed": list(decision["destinations"]),
    }
    if store.create_record(config.results.container, undo_blob_name(config, key), record) is None:
        raise UndoRefused("that decision was already undone (a decision is undone once)")
    _restore(store, config, decision, record)
    return UndoResult(record, record["new_key"])


def _theirs(store: BlobStore, container: str, name: str, decision_name: str, key: str) -> tuple[dict, str] | None:
    """(metadata, ETag) of a copy the decision made, or None (gone, or another blob holds the name)."""
    store.calls += 1
    try:
        properties = store._blob(container, name).get_blob_properties()
    except ResourceNotFoundError:
        return None
    metadata = dict(properties.metadata or {})
    if metadata.get("cvops_key") != key or metadata.get("cvops_review") != decision_name:
        return None
    return metadata, str(properties.etag)


def _restore(store: BlobStore, config: ReviewConfig, decision: dict[str, Any], record: dict[str, Any]) -> None:
    """Steps 2 and 3: the image back in review under the new key, then the decision's copies removed."""
    key, new_key = decision["key"], record["new_key"]
    decision_name = f"{config.results.container}/{config.decision_name(key)}"
    copy = record["review_copy"]
    ours = []
    for destination in decision["destinations"]:
        container, _, name = destination.partition("/")
        found = _theirs(store, container, name, decision_name, key)
        if found is not None:
            ours.append((container, name, *found))
    if not ours:
        if (store.metadata(copy["container"], copy["name"]) or {}).get("cvops_key") == new_key:
            return  # restored already (a rerun, or an undo that completed)
        raise CvopsError(f"no copy of decision {key} is left to bring back to review",
                         hint="its copies were moved or deleted by hand; the undo is recorded")
    container, name, metadata, _ = ours[0]
    download = store._blob(container, name).download_blob()
    data = download.readall()
    content_type = download.properties.content_settings.content_type
    restored = {"cvops_key": new_key, "cvops_outcome": "review", "cvops_undo_of": key,
                "cvops_source_etag": metadata.get("cvops_source_etag", ""),
                "cvops_record": metadata.get("cvops_record", "")}
    if not store.put_verified(copy["container"], copy["name"], data, content_type=content_type, metadata=restored):
        held = store.metadata(copy["container"], copy["name"]) or {}
        if held.get("cvops_key") != new_key:
            raise CvopsError(f"review copy name {copy['container']}/{naming.printable(copy['name'])} is held by "
                             f"another blob: decision {key} cannot be brought back there",
                             hint="decide on the image that holds the name first, then undo is no longer possible: "
                                  "copy the image back by hand")
    sidecar = store.read_json(container, naming.sidecar_name(name)) or {}
    app_record = {k: v for k, v in sidecar.items() if k != "review"}
    app_record.update({"key": new_key, "outcome": "review", "undo_of": key,
                       "destinations": [f"{copy['container']}/{copy['name']}"]})
    store.put_json(copy["container"], naming.sidecar_name(copy["name"]), app_record)
    for container, name, _, etag in ours:
        store.delete_version(container, name, etag)
        found = store.read_record(container, naming.sidecar_name(name))
        if found is not None and (found[0].get("review") or {}).get("key") == key:
            store.delete_version(container, naming.sidecar_name(name), found[1])


def complete_pending_undos(blob_service: BlobServiceClient, config: ReviewConfig) -> int:
    """Finish every undo a crash interrupted after its record was written (the image still in its decision's copies,
    not back in review); returns how many were finished. One listing of the decision folder, plus two reads per undo
    record (undo records are few: one per taken-back decision)."""
    store = BlobStore(blob_service)
    folder = config.results.blob(DECISIONS_FOLDER) + "/"
    container = blob_service.get_container_client(config.results.container)
    done = 0
    for blob in container.list_blobs(name_starts_with=folder):
        if not blob.name.endswith(".undo.json"):
            continue
        record = store.read_json(config.results.container, blob.name)
        key = (record or {}).get("undoes")
        copy = (record or {}).get("review_copy")
        if (not isinstance(key, str) or not KEY_PATTERN.fullmatch(key) or record.get("decision") != UNDO
                or not isinstance(copy, dict) or not isinstance(copy.get("name"), str)):
            continue  # not an undo record this module wrote: nothing to complete
        decision = store.read_json(config.results.container, config.decision_name(key))
        if decision is None:
            continue
        if (store.metadata(copy["container"], copy["name"]) or {}).get("cvops_key") == record.get("new_key"):
            continue  # back in review already
        _restore(store, config, decision, record)
        done += 1
    return done

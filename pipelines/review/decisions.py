"""A person's decision on a review image: recorded exactly once, then the image moves as the app moves images.

The protocol, and why (the Function App's, :mod:`functions.handler`, applied to a person's decision):

1. The decision record ``<results>/reviews/<key>.json`` is created with ``If-None-Match: *``. Its name follows from
   the record key alone, so of two reviewers, a double click or a retried form post, exactly one creates it; every
   other attempt reads it and is told who decided (``already_decided``). It is the intent: from here on, every
   attempt completes *this* decision's move, never a second one. The app's result record is never touched.
2. Each destination (``accepted/<tag>/<escaped name>``, one per chosen tag, or ``rejected/<escaped name>``;
   :func:`functions.naming.copy_name`) is created from the review copy's bytes, read on its ETag, with
   ``If-None-Match: *`` and MD5 verified by the service (:meth:`functions.store.BlobStore.put_verified`). A name
   held by another version of the blob gets this version's own name (``%v<key>``) and the decision record is
   corrected in place (``If-Match``), as the app does. Then the record beside each copy: the app's record with the
   decision under ``review``.
3. The review copy is deleted only if it still has the ETag read in 2 (so only after its verified copies exist),
   then its sidecar, only if it is still this key's.

A crash between any two writes leaves a decision record whose review copy (or sidecar) is still there: the next
:func:`decide` on the key, by anyone, or :func:`complete_pending` finishes the move of the recorded decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from cvops.errors import CvopsError, TransientServiceError
from functions import naming
from functions.store import BlobStore
from pipelines.review.items import (
    DECISIONS_FOLDER,
    ReviewConfig,
    ReviewItem,
    check_key,
    decided_keys,
    get_item,
    list_copies,
    parse_time,
)
from pipelines.review.shape import decision_problem

__all__ = ["DECISION_SCHEMA", "DecisionResult", "build_decision", "check_choice", "check_reviewer", "complete_pending", "decide",
           "list_decisions", "read_decision"]

DECISION_SCHEMA = "cvops.review/1"
UNDO = "undo"
"""The ``decision`` of an undo record (:func:`undo`): it names the decision it takes back under ``undoes``."""
MAX_REVIEWER = 200


@dataclass(frozen=True)
class DecisionResult:
    """What :func:`decide` did. ``status``: ``applied`` (this call's decision won), ``already_decided`` (another
    decision was recorded first: ``decision`` is the winner's, with its reviewer and time), ``not_found`` (no review
    copy and no decision for the key). ``moved``: the image is out of review and in its destinations."""

    status: Literal["applied", "already_decided", "not_found"]
    decision: dict[str, Any] | None
    moved: bool

    @property
    def applied(self) -> bool:
        return self.status == "applied"

    @property
    def already_decided(self) -> bool:
        return self.status == "already_decided"

    @property
    def reviewer(self) -> str | None:
        return self.decision.get("reviewer") if self.decision else None

    @property
    def decided_at(self) -> str | None:
        return self.decision.get("decided_at") if self.decision else None

    @property
    def tags(self) -> list[str]:
        return list(self.decision.get("tags") or []) if self.decision else []

    @property
    def rejected(self) -> bool:
        return bool(self.decision) and self.decision.get("decision") == "rejected"


def check_reviewer(reviewer: str) -> str:
    """The reviewer's name, stripped; ValueError when empty or longer than 200 characters (it is stored as given and
    escaped wherever it is shown)."""
    text = reviewer.strip() if isinstance(reviewer, str) else ""
    if not text or len(text) > MAX_REVIEWER:
        raise ValueError(f"a reviewer is 1-{MAX_REVIEWER} characters")
    return text


def check_choice(item: ReviewItem, tags: Sequence[str] | None, reject: bool) -> tuple[str, ...]:
    """The chosen tags, checked: a rejection has none; Multiclass exactly one, Multilabel one or more, each a tag
    the model knows (every tag it scored or the policy suggested). ValueError naming the tag. Pure."""
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        raise ValueError("tags are a list of tag names")
    if item.problem:
        raise ValueError(f"this image cannot be reviewed: {item.problem}")
    chosen = tuple(dict.fromkeys(tags or ()))
    if reject:
        if chosen:
            raise ValueError("a rejection has no tags")
        return ()
    if not chosen:
        raise ValueError("choose a tag, or reject")
    for tag in chosen:
        if tag not in item.known_tags:
            raise ValueError(f"unknown tag {naming.printable(str(tag))[:120]}: the model's tags are "
                             f"{', '.join(naming.printable(t) for t in item.known_tags)}")
    if item.classification_type == "multiclass" and len(chosen) != 1:
        raise ValueError(f"a Multiclass image has exactly one tag, {len(chosen)} were chosen")
    return chosen


def build_decision(item: ReviewItem, config: ReviewConfig, *, reviewer: str, tags: Sequence[str], reject: bool,
                   now: datetime | None = None) -> dict[str, Any]:
    """The decision record (pure): who, when (UTC), what, what the model said, which review copy (name and ETag),
    the result record it is about, and where the image goes."""
    record = item.record
    blob = record.get("blob") if isinstance(record.get("blob"), dict) else {}
    if reject:
        location = config.rejected
        destinations = [f"{location.container}/{naming.copy_name(location, item.source_name, None)}"]
    else:
        location = config.accepted
        destinations = [f"{location.container}/{naming.copy_name(location, item.source_name, tag)}" for tag in tags]
    result_record = None
    arrived = item.arrived
    if isinstance(blob.get("container"), str) and isinstance(blob.get("etag"), str) and arrived is not None:
        result_record = (f"{config.results.container}/" + naming.result_blob_name(
            config.results, f"{blob['container']}/{item.source_name}", blob["etag"], arrived))
    decided = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "schema": DECISION_SCHEMA,
        "key": item.key,
        "reviewer": reviewer,
        "decided_at": decided.isoformat(),
        "decision": "rejected" if reject else "accepted",
        "tags": list(tags),
        "classification_type": item.classification_type,
        "model": {"top_tag": item.top_tag, "top_score": item.top_score, "threshold": _threshold(item),
                  "suggested": list(item.suggested),
                  "scores": [[tag, score] for tag, score in item.scores], "reason_codes": list(item.reason_codes),
                  "moderation": _moderation_bands(item), "moderation_api": item.moderation_api,
                  **{k: v for k, v in item.model.items() if k in ("iteration_id", "publish_name", "project_id")}},
        "agreed": (not reject) and item.top_tag in tags,
        "source": {"container": blob.get("container"), "name": item.source_name, "etag": blob.get("etag")},
        "record": result_record,
        "review_copy": {"container": item.copy_container, "name": item.copy_name, "etag": item.etag},
        "destinations": destinations,
        "placement": [],
    }


def _moderation_bands(item: ReviewItem) -> list[dict[str, Any]]:
    """The moderation bands that sent the image here, as the record's reasons state them: name (``adult``,
    ``Sexual``...), band (``review`` or ``reject``), the value the service answered and the band's limit. What
    ``review stats`` weighs people's decisions against, per band."""
    bands = []
    for reason in item.record.get("reasons") or []:
        if not isinstance(reason, dict) or reason.get("code") not in ("moderation_review", "moderation_reject"):
            continue
        value, limit = reason.get("score"), reason.get("limit")
        if isinstance(reason.get("tag"), str) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                      for v in (value, limit)):
            bands.append({"name": reason["tag"], "band": reason["code"].removeprefix("moderation_"),
                          "value": value, "limit": limit})
    return bands


def _threshold(item: ReviewItem) -> float | None:
    """The policy's threshold for the model's top tag, as the record's reasons state it (the review band's limit)."""
    for reason in item.record.get("reasons") or []:
        if isinstance(reason, dict) and reason.get("tag") == item.top_tag:
            limit = reason.get("limit")
            if isinstance(limit, int | float) and not isinstance(limit, bool):
                return float(limit)
    return None


def list_decisions(blob_service: BlobServiceClient, config: ReviewConfig, *, since: datetime | None = None,
                   malformed: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Every decision in force (decided at or after ``since``), oldest first. A record is created at decision time,
    so blobs last modified before ``since`` are skipped without being read.

    A decision that was undone (an undo record beside it, :func:`undo`) is not in force and not listed; nor are the
    undo records themselves. A record that is not shaped as this module writes it
    (:func:`pipelines.review.shape.decision_problem`) is left out and, when ``malformed`` is given, appended to it as
    (its blob name in the results container, why): the caller names it to the operator."""
    folder = config.results.blob(DECISIONS_FOLDER) + "/"
    container = blob_service.get_container_client(config.results.container)
    # Last-Modified has whole seconds: a record written at 12:00:00.9 lists as 12:00:00, before a ``since`` of
    # 12:00:00.7. The listing only narrows what is read; ``decided_at`` decides.
    floor = since.replace(microsecond=0) if since is not None else None
    names = [blob.name for blob in container.list_blobs(name_starts_with=folder)
             if blob.name.endswith(".json") and (floor is None or blob.last_modified is None
                                                 or blob.last_modified >= floor)]
    store = BlobStore(blob_service)
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(lambda name: store.read_json(config.results.container, name), names))
    out, undone = [], set()
    for name, decision in zip(names, found, strict=True):
        if not isinstance(decision, dict) or decision.get("schema") != DECISION_SCHEMA:
            continue
        if decision.get("decision") == UNDO:
            if isinstance(decision.get("undoes"), str):
                undone.add(decision["undoes"])
            continue
        decided = parse_time(decision.get("decided_at"))
        if decided is None or (since is not None and decided < since):
            continue
        problem = decision_problem(decision)
        if problem is not None:
            if malformed is not None:
                malformed.append((name, problem))
            continue
        out.append(decision)
    out = [d for d in out if d.get("key") not in undone]
    return sorted(out, key=lambda d: (d["decided_at"], d.get("key", "")))


def read_decision(blob_service: BlobServiceClient, config: ReviewConfig, key: str) -> dict[str, Any] | None:
    """The decision recorded for ``key``, or None."""
    found = BlobStore(blob_service).read_record(config.results.container, config.decision_name(key))
    return found[0] if found else None


def decide(blob_service: BlobServiceClient, config: ReviewConfig, key: str, *, reviewer: str,
           tags: list[str] | None, reject: bool = False, now: datetime | None = None) -> DecisionResult:
    """Record a person's decision on review item ``key`` exactly once and move the image (see the module docstring).

    When a decision is already recorded, this call makes none: it completes that decision's move if pending and
    returns ``already_decided`` with the winner. ValueError for a malformed key, reviewer or choice.
    """
    check_key(key)
    reviewer = check_reviewer(reviewer)
    store = BlobStore(blob_service)
    name = config.decision_name(key)
    found = store.read_record(config.results.container, name)
    if found is None:
        item = get_item(blob_service, config, key)
        if item is None:
            found = store.read_record(config.results.container, name)  # decided and moved since our first read
            if found is None:
                return DecisionResult("not_found", None, False)
        else:
            chosen = check_choice(item, tags, reject)
            decision = build_decision(item, config, reviewer=reviewer, tags=chosen, reject=reject, now=now)
            etag = store.create_record(config.results.container, name, decision)
            if etag is not None:
                return DecisionResult("applied", *_complete(store, config, decision, etag))
            found = store.read_record(config.results.container, name)
            if found is None:
                raise TransientServiceError(f"decision record {config.results.container}/{name} exists and vanished",
                                            hint="try again")
    winner, moved = _complete(store, config, *found)
    return DecisionResult("already_decided", winner, moved)


def _ours(metadata: dict[str, str] | None, decision: dict[str, Any], review_name: str) -> bool:
    return bool(metadata) and metadata.get("cvops_key") == decision["key"] and metadata.get("cvops_review") == review_name


def _place(store: BlobStore, container: str, name: str, data: bytes, decision: dict[str, Any], *,
           content_type: str | None, metadata: dict[str, str]) -> str:
    """Create the copy at ``name``, or at this version's own name when another blob holds ``name``; return the name
    used. Never replaces a blob."""
    candidate = name
    for _ in range(4):
        if store.put_verified(container, candidate, data, content_type=content_type, metadata=metadata):
            return candidate
        found = store.metadata(container, candidate)
        if found is None:
            continue  # deleted between our create and our read: create again
        if _ours(found, decision, metadata["cvops_review"]):
            return candidate  # an earlier attempt of this decision created it, verified
        if candidate != name:
            raise CvopsError(f"copy name {container}/{naming.printable(candidate)} for review decision "
                             f"{decision['key']} is held by another blob",
                             hint="a version's own name embeds its record key: look for a hand-made blob of that name")
        candidate = naming.versioned_copy_name(name, decision["source"]["name"],
                                               decision["key"][:naming.VERSION_LENGTH])
    raise TransientServiceError(f"copy name {container}/{naming.printable(candidate)} keeps appearing and "
                                "disappearing", hint="decide again: the recorded decision is completed")


def _split(destination: str) -> tuple[str, str]:
    container, _, name = destination.partition("/")
    return container, name


def _complete(store: BlobStore, config: ReviewConfig, decision: dict[str, Any],
              decision_etag: str | None) -> tuple[dict[str, Any], bool]:
    """Steps 2 and 3 for a recorded decision; returns (the decision in force, whether the image has moved).
    Idempotent: safe after a crash between any two writes, and concurrently with another attempt."""
    key = decision["key"]
    review_name = f"{config.results.container}/{config.decision_name(key)}"
    copy = decision["review_copy"]
    source = store._blob(copy["container"], copy["name"])
    store.calls += 1
    try:
        download = source.download_blob(etag=copy["etag"], match_condition=MatchConditions.IfNotModified)
        data = download.readall()
        content_type = download.properties.content_settings.content_type
    except ResourceNotFoundError:
        data = None
    except ResourceModifiedError:
        # A condition on a blob that is gone fails as "modified" on some services: only a copy that exists with
        # another ETag is not the one decided on (the app never rewrites a copy); that one is left for a person.
        if store.metadata(copy["container"], copy["name"]) is not None:
            return decision, False
        data = None
    if data is None:
        # Moved already (its copies exist) or removed by hand; either way the sidecar has no copy left to describe.
        _delete_sidecar(store, copy["container"], copy["name"], key)
        moved = all(_ours(store.metadata(*_split(d)), decision, review_name) for d in decision["destinations"])
        return decision, moved
    metadata = {"cvops_key": key, "cvops_review": review_name, "cvops_outcome": decision["decision"],
                "cvops_source_etag": str(decision["source"].get("etag") or "").strip('"'),
                "cvops_record": str(decision.get("record") or "")}
    placed = [f"{container}/{_place(store, container, name, data, decision, content_type=content_type, metadata=metadata)}"
              for container, name in map(_split, decision["destinations"])]
    if placed != decision["destinations"]:
        decision = _correct(store, config, decision, decision_etag, placed)
    record = store.read_json(copy["container"], naming.sidecar_name(copy["name"]))
    for destination in placed:
        container, name = _split(destination)
        if record is None:
            # A concurrent attempt removed the review sidecar after writing these: keep what it wrote.
            existing = store.read_json(container, naming.sidecar_name(name))
            if existing is not None and (existing.get("review") or {}).get("key") == key:
                continue
        store.put_json(container, naming.sidecar_name(name), {**(record or {"key": key}), "review": decision})
    # Only now, with every verified copy and its record in place, and only the version that was decided on.
    store.delete_version(copy["container"], copy["name"], copy["etag"])
    _delete_sidecar(store, copy["container"], copy["name"], key)
    return decision, True


def _delete_sidecar(store: BlobStore, container: str, copy_name: str, key: str) -> None:
    """Delete the review copy's sidecar if it is still this key's (a newer version may have taken the name since)."""
    found = store.read_record(container, naming.sidecar_name(copy_name))
    if found is not None and found[0].get("key") == key:
        store.delete_version(container, naming.sidecar_name(copy_name), found[1])


def _correct(store: BlobStore, config: ReviewConfig, decision: dict[str, Any], etag: str | None,
             placed: list[str]) -> dict[str, Any]:
    """Correct the decision record's destinations in place (If-Match), unless another attempt did first."""
    notes = [{"destination": p, "reason": "name_taken", "planned": d,
              "detail": "another blob holds the planned name; a copy is never replaced, so this version has a name "
                        "of its own"} for p, d in zip(placed, decision["destinations"], strict=True) if p != d]
    corrected = {**decision, "destinations": placed, "placement": [*decision.get("placement", []), *notes]}
    name = config.decision_name(decision["key"])
    for _ in range(3):
        if store.replace_record(config.results.container, name, corrected, etag):
            return corrected
        found = store.read_record(config.results.container, name)
        if found is None:
            break
        current, etag = found
        if current.get("destinations") == placed:
            return current
    raise TransientServiceError(f"decision record {config.results.container}/{name} could not be corrected",
                                hint="decide again: the recorded decision is completed")


def complete_pending(blob_service: BlobServiceClient, config: ReviewConfig) -> int:
    """Finish every decided image whose move a crash interrupted (its review copy or sidecar is still there);
    returns how many were finished (a review copy replaced since the decision is left for a person, not counted).
    Three listings, plus the work of each pending one."""
    store = BlobStore(blob_service)
    copies, sidecars = list_copies(blob_service, config)
    decided = decided_keys(blob_service, config)
    done = 0
    for listed in copies:
        if listed.key in decided:
            found = store.read_record(config.results.container, config.decision_name(listed.key))
            if found is not None:
                done += _complete(store, config, *found)[1]
    names = {listed.name for listed in copies}
    for sidecar in sorted(sidecars):
        copy_name = sidecar[:-len(naming.SIDECAR_SUFFIX)]
        if copy_name in names:
            continue
        found = store.read_record(config.review.container, sidecar)
        if (found is not None and found[0].get("key") in decided
                and store.delete_version(config.review.container, sidecar, found[1])):
            done += 1
    return done

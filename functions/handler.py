"""One image in, exactly one outcome out: validate, classify, route, write. Shared by every trigger.

The write protocol, and why (see also :mod:`functions.store`):

1. ``GET results/date=<arrival day>/<key>.jsonl`` where key = hash(container/name, ETag). If it exists, this version
   was decided before: adopt that decision (no second prediction call) and go to 4.
2. Validate, classify (and moderate), decide. No writes yet: a crash here leaves nothing behind.
3. Create the result record with ``If-None-Match: *``. It is written *first*, as the intent: from here on every
   rerun follows the recorded decision, so a retry can never route the image differently (a new iteration
   published between two attempts, a score on the edge). If another delivery won the race, adopt its record.
4. Put each routed copy (verified by MD5), then the record beside each copy. The last sidecar marks the version
   done: a rerun that finds it skips the copies.
5. If ``CVOPS_MOVE_SOURCE``, delete the source only if it still has the processed ETag.

Why one small JSON Lines blob per record under ``date=YYYY-MM-DD/`` rather than appending to a daily append blob: an
append whose answer is lost is retried and lands twice, and guarding it with ``appendpos`` would make every instance
of a scaled-out app queue behind one blob. A create-if-absent blob per (name, ETag) is exactly-once by construction,
and Power BI, Synapse serverless SQL or Spark read the folder as one JSON Lines table.

A run killed between any two writes converges on the rerun the host makes. A changed blob has a new ETag, hence a
new key and its own record. Four storage calls per accepted image (GET, record, copy, sidecar), plus the delete when
moving; a duplicate delivery costs two (GET of the record, GET of the last sidecar) and no prediction.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from cvops.errors import ConfigurationError
from cvops.redaction import install_log_redaction
from functions import images, naming, vision
from functions.context import AppContext
from functions.policy import Decision, decide, quarantine
from functions.records import SourceRef, build_record
from functions.store import BlobStore

__all__ = ["Outcome", "Verdict", "evaluate", "observe", "process_blob"]

log = logging.getLogger("cvops.functions")
install_log_redaction()

_observers: list[Callable[[Outcome], None]] = []


@contextlib.contextmanager
def observe(callback: Callable[[Outcome], None]) -> Iterator[None]:
    """Call ``callback`` with the outcome of every invocation while the block runs (local runs, benchmarks, tests:
    the registered functions return nothing to the host, as blob and queue triggers must)."""
    _observers.append(callback)
    try:
        yield
    finally:
        _observers.remove(callback)


@dataclass(frozen=True)
class Verdict:
    """What validation and the services said about some bytes, before anything is written."""

    decision: Decision
    image: dict[str, Any] | None = None
    predictions: list[dict[str, Any]] | None = None
    model: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    throttled: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Outcome:
    """What one invocation did: the record in force, whether it was already there, and its cost."""

    record: dict[str, Any]
    duplicate: bool
    storage_calls: int
    written: tuple[str, ...]
    throttled: int = 0
    retries: int = 0
    prediction_ms: float = 0.0
    total_ms: float = 0.0


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def evaluate(data: bytes, ctx: AppContext, *, what: str) -> Verdict:
    """Validate and classify ``data`` and decide its route. Service calls only; no storage. Pure of side effects
    apart from the prediction (which, with ``CVOPS_STORE_PREDICTIONS``, the project keeps)."""
    config = ctx.config
    timings: dict[str, float] = {}
    started = time.perf_counter()
    checked = images.normalise(data)
    timings["validate"] = _ms(started)
    if isinstance(checked, images.Rejection):
        return Verdict(quarantine(checked.reason, checked.message), image=checked.summary(), timings_ms=timings)
    model = {"project_id": config.project_id, "publish_name": config.publish_name, "iteration_id": None,
             "stored": config.store_predictions}
    started = time.perf_counter()
    classification = vision.classify(ctx.prediction, project_id=config.project_id, publish_name=config.publish_name,
                                     data=checked.data, store=config.store_predictions, pacer=ctx.prediction_pacer,
                                     what=f"classify {what}", policy=ctx.retry_policy)
    timings["predict"] = _ms(started)
    if isinstance(classification, vision.ImageRefused):
        return Verdict(quarantine(f"refused_by_{classification.service}",
                                  f"{classification.code or 'error'}: {classification.message}"),
                       image=checked.summary(), model=model, timings_ms=timings)
    model["iteration_id"] = classification.iteration_id
    moderation = None
    throttled, retries = classification.counters.throttled, classification.counters.retries
    if ctx.moderation is not None:
        started = time.perf_counter()
        moderation = vision.moderate(ctx.moderation, data=checked.data, pacer=ctx.moderation_pacer,
                                     what=f"moderate {what}", policy=ctx.retry_policy)
        timings["moderate"] = _ms(started)
        if isinstance(moderation, vision.ImageRefused):
            return Verdict(quarantine(f"refused_by_{moderation.service}",
                                      f"{moderation.code or 'error'}: {moderation.message}"),
                           image=checked.summary(), predictions=classification.predictions, model=model,
                           timings_ms=timings, throttled=throttled, retries=retries)
        throttled += moderation.counters.throttled
        retries += moderation.counters.retries
    decision = decide(config.policy, classification.scores(), moderation.scores if moderation else None)
    return Verdict(decision, image=checked.summary(), predictions=classification.predictions, model=model,
                   moderation=moderation.to_dict() if moderation else None, timings_ms=timings,
                   throttled=throttled, retries=retries)


def destinations(ctx: AppContext, source: SourceRef, decision: Decision) -> list[str]:
    """``container/blob`` of every copy the decision asks for (one per tag when accepted)."""
    location = ctx.config.destination(decision.outcome)
    if decision.outcome == "accepted":
        names = [naming.copy_name(location, source.name, tag) for tag in decision.tags]
    else:
        names = [naming.copy_name(location, source.name)]
    return [f"{location.container}/{name}" for name in names]


def process_blob(source: SourceRef, data: bytes, ctx: AppContext) -> Outcome:
    """Route one version of one blob, exactly once (see the module docstring for the protocol).

    A missing output container is a ConfigurationError naming its setting (infra/ creates them; a typo in a setting
    must not look like a storage outage).
    """
    try:
        return _process_blob(source, data, ctx)
    except ResourceNotFoundError as exc:
        if getattr(exc, "error_code", None) != "ContainerNotFound":
            raise
        url = str(getattr(getattr(getattr(exc, "response", None), "request", None), "url", ""))
        config = ctx.config
        for key in ("classified", "review", "rejected", "quarantine", "results"):
            container = getattr(config, key).container
            if f"/{container}/" in url or url.endswith(f"/{container}"):
                setting = f"CVOPS_{key.upper()}_CONTAINER"
                raise ConfigurationError(f"container {container!r} named by {setting} does not exist",
                                         setting=setting,
                                         hint="create it (infra/ does) or fix the setting") from exc
        raise


def _process_blob(source: SourceRef, data: bytes, ctx: AppContext) -> Outcome:
    started = time.perf_counter()
    config = ctx.config
    store = BlobStore(ctx.blob_service)
    what = f"{source.container}/{source.name}"
    key = naming.record_key(what, source.etag)
    record_name = naming.result_blob_name(config.results, what, source.etag, source.last_modified)

    record = store.read_json(config.results.container, record_name)
    duplicate = record is not None
    verdict = None
    if record is None:
        verdict = evaluate(data, ctx, what=what)
        record = build_record(
            key=key, source=source, decision=verdict.decision, policy=config.policy,
            destinations=destinations(ctx, source, verdict.decision), image=verdict.image,
            predictions=verdict.predictions, model=verdict.model, moderation=verdict.moderation,
            timings_ms={**verdict.timings_ms, "before_write": _ms(started)},
            errors=[r.message for r in verdict.decision.reasons if verdict.decision.outcome == "quarantine"])
        if not store.create_record(config.results.container, record_name, record):
            duplicate = True
            record = store.read_json(config.results.container, record_name) or record
    written = _complete(store, ctx, source, data, record, record_name, check_done=duplicate)
    outcome = Outcome(record=record, duplicate=duplicate, storage_calls=store.calls, written=tuple(written),
                      throttled=verdict.throttled if verdict else 0, retries=verdict.retries if verdict else 0,
                      prediction_ms=(verdict.timings_ms.get("predict", 0.0) + verdict.timings_ms.get("moderate", 0.0))
                      if verdict else 0.0,
                      total_ms=_ms(started))
    for callback in list(_observers):
        callback(outcome)
    log.info("%s %s (etag %s): %s%s%s in %.0f ms", "already routed" if duplicate else "routed", what,
             source.etag, record["outcome"], f" {record['tags']}" if record["tags"] else "",
             f" ({record['reasons'][0]['message']})" if record["reasons"] else "", outcome.total_ms)
    return outcome


def _complete(store: BlobStore, ctx: AppContext, source: SourceRef, data: bytes, record: dict[str, Any],
              record_name: str, *, check_done: bool) -> list[str]:
    """Steps 4 and 5: copies, sidecars, optional move. Idempotent; skips the copies when the last sidecar exists."""
    config = ctx.config
    targets = [tuple(d.split("/", 1)) for d in record["destinations"]]
    written: list[str] = []
    # Copy names follow the blob's name, not its version, so a sidecar found there may belong to another version of
    # the same blob: it marks this version done only if it carries this record's key. When it is another version's,
    # this version writes over it only while it is still the blob's current version (Last-Modified has one-second
    # resolution, so it cannot order two writes within a second); a late retry of a replaced version writes nothing.
    done = stale = False
    if targets and check_done:
        sidecar = store.read_json(targets[-1][0], naming.sidecar_name(targets[-1][1]))
        if sidecar is not None and sidecar.get("key") == record["key"]:
            done = True
        elif sidecar is not None:
            current = store.current_etag(source.container, source.name)
            stale = current != source.etag if current is not None else not _newer(record, sidecar)
    if stale:
        log.warning("%s/%s (etag %s): a newer version is already routed there; this version's copies are not written",
                    source.container, source.name, source.etag)
    if not done and not stale:
        content_type = source.content_type or mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        metadata = {"cvops_source_etag": source.etag.strip('"'), "cvops_record": f"{config.results.container}/"
                    f"{record_name}", "cvops_outcome": record["outcome"]}
        for container, name in targets:
            store.put_verified(container, name, data, content_type=content_type, metadata=metadata)
            written.append(f"{container}/{name}")
        for container, name in targets:
            store.put_json(container, naming.sidecar_name(name), record)
            written.append(f"{container}/{naming.sidecar_name(name)}")
    if config.move_source and store.delete_version(source.container, source.name, source.etag):
        written.append(f"deleted {source.container}/{source.name}")
    return written


def _newer(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """True when record ``one`` describes a later version of the blob than ``other`` (by the blob's Last-Modified)."""
    first, second = parse_time(one.get("blob", {}).get("last_modified")), parse_time(other["blob"]["last_modified"])
    return first is not None and second is not None and first > second


def parse_time(value: Any) -> datetime | None:
    """A Last-Modified from trigger metadata: a datetime, ISO 8601 text, or an RFC 1123 date."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

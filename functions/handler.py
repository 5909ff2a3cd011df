"""One image in, exactly one outcome out: validate, classify, route, write. Shared by every trigger.

The write protocol, and why (see also :mod:`functions.store`):

1. ``GET results/date=<arrival day>/<key>.jsonl`` where key = hash(container/name, ETag). If it exists, this version
   was decided before: adopt that decision (no second prediction call) and go to 4. With an in-process model
   (``CVOPS_MODEL``) this read is skipped: judging again costs a few milliseconds of CPU and no money, less than a
   storage call on every first delivery, and step 3 finds a duplicate all the same.
2. Validate, classify (and moderate), decide. No writes yet: a crash here leaves nothing behind.
3. Create the result record with ``If-None-Match: *``. It is written *first*, as the intent: from here on every
   rerun follows the recorded decision, so a retry can never route the image differently (a new iteration
   published between two attempts, a score on the edge). If another delivery won the race, adopt its record.
   Its destinations are final names, escaped and within Azure's limits (:mod:`functions.naming`), computed before.
4. Create each routed copy with ``If-None-Match: *`` (verified by MD5). A copy name follows the blob's name, so
   another version of the blob may hold it already (a newer one routed first, a late retry of an older one, a
   concurrent one): a routed copy is never replaced, in any order. When the holder (by its ``cvops_key`` metadata)
   is another version, this version is copied to a name of its own (``%v<key>`` before the extension) and the record
   is corrected in place (``If-Match``) with a ``placement`` entry saying which name was taken by whom. Then the
   record beside each copy. The last sidecar marks the version done: a rerun that finds it skips the copies.
5. If ``CVOPS_MOVE_SOURCE``, delete the source only if it still has the processed ETag (so only after this version's
   own copies exist; a source replaced meanwhile is the newer version's, left for its own event).

Why one small JSON Lines blob per record under ``date=YYYY-MM-DD/`` rather than appending to a daily append blob: an
append whose answer is lost is retried and lands twice, and guarding it with ``appendpos`` would make every instance
of a scaled-out app queue behind one blob. A create-if-absent blob per (name, ETag) is exactly-once by construction,
and Power BI, Synapse serverless SQL or Spark read the folder as one JSON Lines table.

A run killed between any two writes converges on the rerun the host makes. A changed blob has a new ETag, hence a
new key and its own record. Four storage calls per accepted image (GET, record, copy, sidecar; three with an in-process
model), plus the delete when moving; a duplicate delivery costs two (GET of the record, GET of the last sidecar) and no
prediction (three with an in-process model: the create that fails comes first). A copy name
held by another version costs three more (read its metadata, create the version's own copy, correct the record).

Blob names reach log lines only through :func:`functions.naming.printable`, so a newline in a name cannot forge one.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from cvops.errors import ConfigurationError, CvopsError, TransientServiceError
from cvops.redaction import install_log_redaction
from functions import images, naming, routes, vision
from functions import moderation as moderation_api
from functions.config import setting_in_effect
from functions.context import AppContext
from functions.outcome_log import log_outcome
from functions.policy import Decision, decide, quarantine
from functions.records import SourceRef, build_record
from functions.store import BlobStore

__all__ = ["UNADDRESSABLE", "RoutedBlob", "Verdict", "judge_image", "observe", "process_blob", "refuse_unaddressable"]

log = logging.getLogger("cvops.functions")
install_log_redaction()

_observers: list[Callable[[RoutedBlob], None]] = []


def start_scan_check(check: Callable[[], images.Rejection | None]) -> Future[images.Rejection | None]:
    """Run a deferred JPEG scan check (images.normalise) on a thread of its own, while the prediction call waits on
    the network (libjpeg decodes without the GIL).

    Why not a shared pool: four slow files held a 4-thread pool and every ordinary photo behind them waited 16 s
    (issue 17). One thread per invocation is bounded by the host's own concurrency, the memory gate bounds what the
    checks hold together, and :mod:`functions.decode_cost` bounds what each one costs.
    """
    future: Future[images.Rejection | None] = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(check())
            except BaseException as exc:  # handed to the waiting caller, as a pool would
                future.set_exception(exc)

    threading.Thread(target=run, name="cvops-scan-check", daemon=True).start()
    return future


@contextlib.contextmanager
def observe(callback: Callable[[RoutedBlob], None]) -> Iterator[None]:
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
class RoutedBlob:
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


def judge_image(data: bytes, ctx: AppContext, *, what: str) -> Verdict:
    """Validate and classify ``data`` and decide its route. Service calls only; no storage. Pure of side effects
    apart from the prediction (which, with ``CVOPS_STORE_PREDICTIONS``, the project keeps)."""
    config = ctx.config
    timings: dict[str, float] = {}
    started = time.perf_counter()
    # A stored prediction keeps the image in the project, so a JPEG's scan check runs first then; otherwise it runs
    # while the prediction call waits on the network, and a corrupt image only costs that one call.
    # An exported model (CVOPS_MODEL) runs in-process: no network wait to overlap, so the check runs inline, and its
    # one strict JPEG decode is the model's picture (images.normalise with model_side).
    exported = ctx.exported
    checked = images.normalise(data, defer_scan_check=not config.store_predictions and exported is None,
                               model_side=exported.picture if exported is not None else None)
    timings["validate"] = _ms(started)
    if isinstance(checked, images.Rejection):
        return Verdict(quarantine(checked.reason, checked.message), image=checked.summary(), timings_ms=timings)
    model: dict[str, Any]
    if exported is not None:
        model = {"exported_model": exported.describe()}
    else:
        model = {"project_id": config.project_id, "publish_name": config.publish_name, "iteration_id": None,
                 "stored": config.store_predictions}
    scan = start_scan_check(checked.pending_check) if checked.pending_check is not None else None
    started = time.perf_counter()
    try:
        if exported is not None:
            classification = vision.classify_exported(exported, checked)
        else:
            classification = vision.classify(ctx.prediction, project_id=config.project_id,
                                             publish_name=config.publish_name, data=checked.data,
                                             store=config.store_predictions, pacer=ctx.prediction_pacer,
                                             what=f"classify {what}", policy=ctx.retry_policy)
    finally:
        problem = scan.result() if scan is not None else None  # never leave a check running behind a failure
    timings["predict"] = _ms(started)
    if problem is not None:
        return Verdict(quarantine(problem.reason, problem.message), image=checked.summary(), model=model,
                       timings_ms=timings)
    if isinstance(classification, vision.ImageRefused):
        return Verdict(quarantine(f"refused_by_{classification.service}",
                                  f"{classification.code or 'error'}: {classification.message}"),
                       image=checked.summary(), model=model, timings_ms=timings)
    if exported is None:
        model["iteration_id"] = classification.iteration_id
    moderation = None
    throttled, retries = classification.counters.throttled, classification.counters.retries
    if ctx.moderation is not None:
        started = time.perf_counter()
        moderation = moderation_api.moderate(config.moderation_api, ctx.moderation, data=checked.data,
                                             pacer=ctx.moderation_pacer, what=f"moderate {what}",
                                             policy=ctx.retry_policy)
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
    """``container/blob`` of every copy the decision asks for (one per tag when accepted): escaped, distinct for
    distinct names and tags, within 1,024 characters with the sidecar's suffix (see :mod:`functions.naming`)."""
    location = ctx.config.destination(decision.outcome)
    tags: list[str | None] = list(decision.tags) if decision.outcome == "accepted" else [None]
    return [f"{location.container}/{naming.copy_name(location, source.name, tag)}" for tag in tags]


def placement_notes(ctx: AppContext, decision: Decision, planned: list[str]) -> list[dict]:
    """What the record says about destinations that are not the name itself: a name or tag shortened to fit."""
    location = ctx.config.destination(decision.outcome)
    notes = []
    for destination in planned:
        decoded = naming.decode(location, destination.split("/", 1)[1], tagged=decision.outcome == "accepted")
        if decoded.digest or decoded.tag_digest:
            notes.append({"destination": destination, "reason": "name_shortened",
                          "detail": f"the escaped {'name' if decoded.digest else 'tag'} does not fit Azure's "
                                    f"{naming.MAX_NAME_LENGTH:,} characters with its sidecar; shortened to a prefix "
                                    "and its SHA-256 (the full name is blob.name)"})
    return notes


_NOT_COPIED = {"destination": None, "reason": "not_copied",
               "detail": "refused by its size before it was read: no copy is made (it would read the upload the limit "
                         "refuses to read); the blob stays where it was uploaded"}


def process_blob(source: SourceRef, data: bytes, ctx: AppContext, *,
                 refused: images.Rejection | None = None) -> RoutedBlob:
    """Route one version of one blob, exactly once (see the module docstring for the protocol).

    ``refused``: the trigger refused the blob before reading it (by its size alone, :func:`images.input_too_large`),
    so ``data`` is empty. The record quarantines it with that reason and no copy: copying would read the upload the
    limit refuses to read. With no copy of its own, the source is never deleted (``CVOPS_MOVE_SOURCE``).

    A missing output container is a ConfigurationError naming its setting (infra/ creates them; a typo in a setting
    must not look like a storage outage).
    """
    try:
        return _process_blob(source, data, ctx, refused)
    except ResourceNotFoundError as exc:
        if getattr(exc, "error_code", None) != "ContainerNotFound":
            raise
        url = str(getattr(getattr(getattr(exc, "response", None), "request", None), "url", ""))
        config = ctx.config
        for route in routes.OUTPUTS:
            container = getattr(config, route.key).container
            if f"/{container}/" in url or url.endswith(f"/{container}"):
                setting = setting_in_effect(route)  # a former name, when that is what configured it
                raise ConfigurationError(f"container {container!r} named by {setting} does not exist",
                                         setting=setting,
                                         hint="create it (infra/ does) or fix the setting") from exc
        raise


UNADDRESSABLE = "unaddressable_name"
"""The quarantine reason of a blob whose name a request cannot address exactly (see :func:`refuse_unaddressable`)."""


def refuse_unaddressable(ctx: AppContext, container: str, name: str) -> bool:
    """Whether ``name`` is one the app must not address (:func:`functions.naming.unaddressable`); if so, its
    quarantine record has been written (or the blob is gone) and the trigger must not read, copy or delete it.

    Every trigger calls this before it reads a blob. A request by such a name reaches *another* blob (urllib3 and
    proxies resolve ``a/../b.jpg`` to ``b.jpg``; a SAS or a managed identity's token does not cover the path), so
    neither the bytes nor the ETag a host read by that name can be trusted. The version is taken from a listing
    instead (``prefix=`` is a query parameter, never normalised): the exact name sorts first among the names it
    prefixes. The record is keyed by that name and ETag, as any record, so redeliveries converge on it; it has no
    destinations (nothing was read, so nothing is copied) and the source is never deleted.
    """
    if naming.unaddressable(name) is None:
        return False
    client = ctx.blob_service.get_container_client(container)
    listed = next(iter(next(client.list_blobs(name_starts_with=name, results_per_page=1).by_page(), [])), None)
    if listed is None or listed.name != name:
        log.warning("%s/%s is gone (deleted before it was refused); nothing to record", container,
                    naming.printable(name))
        return True
    settings = listed.content_settings
    etag = str(listed.etag)  # a listing gives it bare; a download, quoted: records show the download's form
    source = SourceRef(container=container, name=name, etag=etag if etag.startswith('"') else f'"{etag}"',
                       size=int(listed.size or 0),
                       last_modified=listed.last_modified, content_type=settings.content_type if settings else None,
                       uri=client.get_blob_client(name).url)
    process_blob(source, b"", ctx)
    return True


def _process_blob(source: SourceRef, data: bytes, ctx: AppContext, refused: images.Rejection | None) -> RoutedBlob:
    started = time.perf_counter()
    config = ctx.config
    store = BlobStore(ctx.blob_service)
    what = f"{source.container}/{source.name}"
    shown = naming.printable(what)
    key = naming.record_key(what, source.etag)
    record_name = naming.result_blob_name(config.results, what, source.etag, source.last_modified)
    unaddressable = naming.unaddressable(source.name)

    found = None if ctx.exported is not None else store.read_record(config.results.container, record_name)
    duplicate = found is not None
    record, record_etag = found if found is not None else (None, None)
    verdict = None
    if record is None:
        if unaddressable is not None:  # never judged, copied or deleted: the bytes may be another blob's
            verdict = Verdict(quarantine(UNADDRESSABLE, unaddressable))
        elif refused is not None:  # refused by its size alone: never read past its first range, never copied
            verdict = Verdict(quarantine(refused.reason, refused.message))
        else:
            verdict = judge_image(data, ctx, what=shown)
        planned = [] if unaddressable is not None or refused is not None else destinations(ctx, source,
                                                                                             verdict.decision)
        record = build_record(
            key=key, source=source, decision=verdict.decision, policy=config.policy, destinations=planned,
            placement=placement_notes(ctx, verdict.decision, planned) if refused is None else [_NOT_COPIED],
            image=verdict.image,
            predictions=verdict.predictions, model=verdict.model, moderation=verdict.moderation,
            timings_ms={**verdict.timings_ms, "before_write": _ms(started)},
            errors=[r.message for r in verdict.decision.reasons if verdict.decision.outcome == "quarantine"],
            slice_depth=config.slice_depth)
        record_etag = store.create_record(config.results.container, record_name, record)
        if record_etag is None:
            duplicate = True
            found = store.read_record(config.results.container, record_name)
            if found is not None:
                record, record_etag = found
    if unaddressable is not None:  # whatever an older record planned: no copy and no delete by this name
        written: list[str] = []
    else:
        record, written = _complete(store, ctx, source, data, record, record_name, record_etag, check_done=duplicate)
    outcome = RoutedBlob(record=record, duplicate=duplicate, storage_calls=store.calls, written=tuple(written),
                         throttled=verdict.throttled if verdict else 0, retries=verdict.retries if verdict else 0,
                         prediction_ms=(verdict.timings_ms.get("predict", 0.0) + verdict.timings_ms.get("moderate", 0.0))
                         if verdict else 0.0,
                         total_ms=_ms(started))
    for callback in list(_observers):
        callback(outcome)
    log.info("%s %s (etag %s): %s%s%s in %.0f ms", "already routed" if duplicate else "routed", shown,
             source.etag, record["outcome"], f" {record['tags']}" if record["tags"] else "",
             f" ({record['reasons'][0]['message']})" if record["reasons"] else "", outcome.total_ms)
    log_outcome(record, duration_ms=outcome.total_ms, duplicate=duplicate)  # for Application Insights queries
    return outcome


def _complete(store: BlobStore, ctx: AppContext, source: SourceRef, data: bytes, record: dict[str, Any],
              record_name: str, record_etag: str | None, *, check_done: bool) -> tuple[dict[str, Any], list[str]]:
    """Steps 4 and 5: copies, sidecars, optional move; returns the record in force (corrected when a copy name was
    taken) and what was written. Idempotent; skips the copies when the last sidecar is this version's."""
    config = ctx.config
    targets = [_split(d) for d in record["destinations"]]
    written: list[str] = []
    # The last sidecar marks this version done only if it carries this record's key: at a name another version
    # holds, the sidecar is that version's.
    done = False
    if targets and check_done:
        sidecar = store.read_json(targets[-1][0], naming.sidecar_name(targets[-1][1]))
        done = sidecar is not None and sidecar.get("key") == record["key"]
    if not done:
        content_type = source.content_type or mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        metadata = {"cvops_source_etag": source.etag.strip('"'), "cvops_key": record["key"],
                    "cvops_record": f"{config.results.container}/{record_name}", "cvops_outcome": record["outcome"]}
        placed: list[tuple[str, str]] = []
        notes: list[dict[str, Any]] = []
        for container, name in targets:
            final, holder = _place_copy(store, container, name, data, source=source, content_type=content_type,
                                        metadata=metadata)
            placed.append((container, final))
            written.append(f"{container}/{final}")
            if final != name:
                notes.append({"destination": f"{container}/{final}", "reason": "name_taken",
                              "planned": f"{container}/{name}", "held_by": holder,
                              "detail": "another version of this blob holds the planned name; a routed copy is "
                                        "never replaced, so this version has a name of its own"})
        if notes:
            record = _correct_record(store, config.results.container, record_name, record_etag, {
                **record, "destinations": [f"{c}/{n}" for c, n in placed],
                "placement": [*record.get("placement", []), *notes]})
            log.warning("%s (etag %s): %d copy name(s) held by another version of the blob; this version was "
                        "copied to %s", naming.printable(f"{source.container}/{source.name}"), source.etag,
                        len(notes), ", ".join(naming.printable(n["destination"]) for n in notes))
        for container, name in placed:
            store.put_json(container, naming.sidecar_name(name), record)
            written.append(f"{container}/{naming.sidecar_name(name)}")
    # Only a version with copies of its own may lose its source (an accepted decision always names a tag).
    if config.move_source and targets and store.delete_version(source.container, source.name, source.etag):
        written.append(f"deleted {source.container}/{source.name}")
    return record, written


def _split(destination: str) -> tuple[str, str]:
    container, _, name = destination.partition("/")
    return container, name


def _place_copy(store: BlobStore, container: str, name: str, data: bytes, *, source: SourceRef,
                content_type: str, metadata: dict[str, str]) -> tuple[str, dict[str, str] | None]:
    """Create this version's copy at ``name``, or at the version's own name when another version holds ``name``;
    returns (the name used, who held the planned one). Never overwrites a copy."""
    candidate, holder = name, None
    for _ in range(4):
        if store.put_verified(container, candidate, data, content_type=content_type, metadata=metadata):
            return candidate, holder
        found = store.metadata(container, candidate)
        if found is None:
            continue  # deleted between our create and our read: create again
        if _same_version(found, metadata):
            return candidate, holder  # an earlier attempt of this version created it, verified
        if candidate != name:
            raise CvopsError(
                f"copy name {container}/{naming.printable(candidate)} for version {source.etag} of "
                f"{naming.printable(source.name)} is held by another version ({found.get('cvops_record')})",
                hint="a version's own name embeds its record key: look for a hand-made blob of that name")
        holder = {"etag": found.get("cvops_source_etag"), "record": found.get("cvops_record")}
        candidate = naming.versioned_copy_name(name, source.name, metadata["cvops_key"][:naming.VERSION_LENGTH])
    raise TransientServiceError(f"copy name {container}/{naming.printable(candidate)} keeps appearing and "
                                "disappearing", hint="the host retries the blob")


def _same_version(found: dict[str, str], ours: dict[str, str]) -> bool:
    """Whether a copy's metadata says it was written for our record (copies from before ``cvops_key`` carry only
    ``cvops_record``, which names the record and so the version)."""
    if found.get("cvops_key"):
        return found["cvops_key"] == ours["cvops_key"]
    return found.get("cvops_record") == ours["cvops_record"]


def _correct_record(store: BlobStore, container: str, name: str, etag: str | None,
                    corrected: dict[str, Any]) -> dict[str, Any]:
    """Replace the record with its corrected destinations (If-Match), unless another delivery of this version did
    first: its correction names the same copies (a version's names are a function of the version), so it is the
    record in force."""
    for _ in range(3):
        if store.replace_record(container, name, corrected, etag):
            return corrected
        found = store.read_record(container, name)
        if found is None:
            break
        current, etag = found
        if current.get("destinations") == corrected["destinations"]:
            return current
    raise TransientServiceError(f"result record {container}/{name} could not be corrected (it vanished or keeps "
                                "changing)", hint="the host retries the blob")

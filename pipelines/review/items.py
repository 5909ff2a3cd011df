"""What is waiting for a person: the review copies the Function App wrote, each with the record beside it.

Why read the sidecar and not the result record: the app writes the record beside every copy (``<copy>.cvops.json``,
:func:`functions.naming.sidecar_name`), so one listing of the review location finds every copy and its record's
name without knowing the day the blob arrived (the result record's partition). The copy's own metadata carries its
record key (``cvops_key``), so one listing with metadata also finds the copy of a key (:func:`find_copy`) without
reading any sidecar.

Everything read from a blob (its name, the record's fields) is data from whoever could write to the containers:
keys are checked to be the app's 32 hex digits before they name a blob, and served image types are limited to image
formats (a review copy stored as ``text/html`` is served as bytes, never as a page). Escaping for display is the
page's job; nothing here builds HTML.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from functions import naming, routes
from functions.naming import Location
from functions.policy import MODERATION_SCORES, SEVERITY_CATEGORIES
from functions.store import BlobStore

__all__ = ["KEY_PATTERN", "SAFE_IMAGE_TYPES", "ItemCache", "ListedCopy", "ReviewConfig", "ReviewItem", "check_key",
           "decided_keys", "decision_blob_name", "find_copy", "get_item", "image_type", "item_from_record", "list_copies",
           "list_waiting", "parse_time", "read_image", "review_blob_service"]

KEY_PATTERN = re.compile(r"[0-9a-f]{32}")
"""A record key as :func:`functions.naming.record_key` makes it; anything else is refused before it names a blob."""

DECISIONS_FOLDER = "reviews"
"""Decision records live at ``<results>/reviews/<key>.json``: one per record key, beside the date partitions."""

SAFE_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/bmp", "image/webp", "image/tiff"})
"""The image types :func:`image_type` recognises by their bytes; anything else is served as ``application/octet-stream``."""


@dataclass(frozen=True)
class ReviewConfig:
    """The locations a review reads and writes: the app's own settings, so the page and the app agree."""

    review: Location
    accepted: Location
    rejected: Location
    results: Location

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ReviewConfig:
        """From the app's own settings and defaults for the review, accepted, rejected and results routes
        (:mod:`functions.routes`), read by the app's own rule (:func:`functions.config.route_location`, which also
        honours a deprecated former name such as ``CVOPS_CLASSIFIED_CONTAINER``): an accepted image is copied where
        the app would have put it. A wrong value is a ConfigurationError naming its setting, as the app's start would
        give."""
        from functions.config import route_location

        env = os.environ if environ is None else environ
        locations = {}
        for key in ("review", routes.BY_OUTCOME["accepted"].key, "rejected", "results"):
            locations[key] = route_location(routes.BY_KEY[key], env)
        naming.check_disjoint(locations)
        return cls(**locations)

    def decision_name(self, key: str) -> str:
        """The decision record's blob name in the results container (see :func:`decision_blob_name`)."""
        return decision_blob_name(self.results, key)


def review_blob_service(environ: Mapping[str, str] | None = None, cli_settings: Any = None) -> BlobServiceClient:
    """The operator's storage client: the CLI's settings (``AZURE_STORAGE_CONNECTION_STRING`` or
    ``AZURE_STORAGE_ACCOUNT_URL`` with the Azure identity) when they name an account, else the app's
    ``CVOPS_STORAGE`` (a connection string, or ``CVOPS_STORAGE__blobServiceUri`` with an identity)."""
    from cvops import clients
    from cvops.errors import ConfigurationError
    from functions.config import StorageConnection
    from functions.context import blob_service_for
    from functions.settings import STORAGE_CONNECTION

    env = os.environ if environ is None else environ
    if cli_settings is not None:
        from pipelines import config as cli_config

        if cli_settings.get(cli_config.STORAGE_CONNECTION_STRING) or cli_settings.get(cli_config.STORAGE_ACCOUNT_URL):
            return clients.blob_service_client(**cli_settings.storage())
        if not any(k == STORAGE_CONNECTION or k.startswith(f"{STORAGE_CONNECTION}__") for k in env if env[k].strip()):
            raise ConfigurationError(
                f"no storage account: neither {cli_config.STORAGE_CONNECTION_STRING}, "
                f"{cli_config.STORAGE_ACCOUNT_URL} nor the app's {STORAGE_CONNECTION} is set",
                setting=cli_config.STORAGE_CONNECTION_STRING,
                hint=f"set {cli_config.STORAGE_ACCOUNT_URL}=https://<account>.blob.core.windows.net (your Azure "
                     f"identity) or {cli_config.STORAGE_CONNECTION_STRING}: the account the Function App writes to")
    return blob_service_for(StorageConnection.from_environ(env))


def check_key(key: str) -> str:
    """``key`` if it is a record key (32 lower-case hex digits), else ValueError: a forged form field must not name
    a blob."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"{naming.printable(str(key))[:80]} is not a review item key (32 hex digits)")
    return key


def decision_blob_name(results: Location, key: str) -> str:
    """``<prefix>reviews/<key>.json``: derived from the key alone, so every attempt at deciding an image (another
    reviewer, a double click, a rerun after a crash) creates the same blob, and only the first succeeds."""
    return results.blob(DECISIONS_FOLDER, f"{check_key(key)}.json")


@dataclass(frozen=True)
class ReviewItem:
    """One image waiting for a person, as the page shows it. Built from the app's record (:func:`item_from_record`).

    ``scores`` are (tag, probability), highest first (ties by tag); ``reason`` is the policy's reasons as one
    sentence and ``reason_codes`` their stable codes; ``known_tags`` are the tags a person may choose (every tag the
    model scored, plus the policy's suggestions); ``suggested`` the tags the policy passed as suggestions.
    """

    key: str
    copy: str
    source_name: str
    etag: str
    content_type: str | None
    arrived: datetime | None
    scores: tuple[tuple[str, float], ...]
    reason: str
    model: dict[str, Any]
    classification_type: str
    top_tag: str | None
    top_score: float | None
    reason_codes: tuple[str, ...] = ()
    suggested: tuple[str, ...] = ()
    known_tags: tuple[str, ...] = ()
    moderation: tuple[tuple[str, float], ...] = ()
    """The moderation answer the app recorded: (name, value) per score (Computer Vision's 0-1 ``adult``...) or
    severity (Content Safety's 0/2/4/6 ``Sexual``...), in the API's order; empty when moderation was off."""
    moderation_api: str | None = None
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    problem: str | None = None
    """Why this item cannot be reviewed (its record is malformed), else None. Such an item is listed and shown with
    this sentence, so the rest of the queue keeps working and the operator sees what to fix; no decision is taken
    on it (:func:`pipelines.review.decisions.check_choice` refuses)."""

    @property
    def copy_container(self) -> str:
        return self.copy.partition("/")[0]

    @property
    def copy_name(self) -> str:
        return self.copy.partition("/")[2]


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if 0.0 <= number <= 1.0 else None


MODERATION_NAMES = (*MODERATION_SCORES, *SEVERITY_CATEGORIES)
"""The scores (Computer Vision 3.2) and severities (Content Safety) a record's ``moderation`` may hold, in the order the
page shows them."""


def moderation_of(record: Mapping[str, Any]) -> tuple[tuple[tuple[str, float], ...], str | None]:
    """The recorded moderation scores or severities and the API's name; finite numbers only (a malformed value is left
    out: the reasons still say what the policy did with it). Pure."""
    moderation = record.get("moderation")
    if not isinstance(moderation, dict):
        return (), None
    values = tuple((name, float(value)) for name in MODERATION_NAMES
                   if isinstance(value := moderation.get(name), int | float) and not isinstance(value, bool)
                   and math.isfinite(value))
    api = moderation.get("api")
    return values, api if isinstance(api, str) else None


def item_from_record(record: Mapping[str, Any], *, copy: str, etag: str,
                     content_type: str | None) -> ReviewItem | None:
    """The item for a review copy and the record beside it; None when the record is not a review record of this
    copy (another outcome, a missing or malformed key, a record that does not name the copy). A review record of
    the copy with malformed fields (a prediction without a score, a suggested tag the model did not score, tags that
    are not a list) is an item with a ``problem``: shown, never decided on. Pure."""
    key = record.get("key")
    if record.get("outcome") != "review" or not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        return None
    destinations = record.get("destinations")
    if not isinstance(destinations, list) or copy not in destinations:
        return None
    blob = record.get("blob") if isinstance(record.get("blob"), dict) else {}
    source_name = blob.get("name") if isinstance(blob.get("name"), str) else None
    if not source_name:
        return None
    scores: dict[str, float] = {}
    problems: list[str] = []
    predictions = record.get("predictions")
    if predictions is not None and not isinstance(predictions, list):
        problems.append(f"its predictions are a {type(predictions).__name__}, not a list")
        predictions = []
    for number, prediction in enumerate(predictions or [], start=1):
        if not isinstance(prediction, dict) or not isinstance(prediction.get("tag"), str):
            problems.append(f"prediction {number} has no tag name")
            continue
        score = _score(prediction.get("probability"))
        if score is not None:  # a model's non-finite answer is recorded without a score: the image still needs a person
            scores[prediction["tag"]] = max(score, scores.get(prediction["tag"], 0.0))
    ordered = tuple(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))
    raw_reasons = record.get("reasons")
    if raw_reasons is not None and not isinstance(raw_reasons, list):
        problems.append(f"its reasons are a {type(raw_reasons).__name__}, not a list")
        raw_reasons = []
    reasons = [r for r in raw_reasons or [] if isinstance(r, dict)]
    raw_tags = record.get("tags")
    if raw_tags is not None and (not isinstance(raw_tags, list) or not all(isinstance(t, str) for t in raw_tags)):
        problems.append("its suggested tags are not a list of names")
        raw_tags = [t for t in raw_tags if isinstance(t, str)] if isinstance(raw_tags, list) else []
    suggested = tuple(raw_tags or ())
    problems += [f"suggested tag {naming.printable(t)[:80]} has no score" for t in suggested if t not in scores]
    policy = record.get("policy") if isinstance(record.get("policy"), dict) else {}
    kind = policy.get("classification_type")
    moderation, moderation_api = moderation_of(record)
    return ReviewItem(
        key=key, copy=copy, source_name=source_name, etag=etag, content_type=content_type,
        arrived=parse_time(blob.get("last_modified")), scores=ordered,
        reason="; ".join(str(r.get("message", "")) for r in reasons if r.get("message")),
        model=dict(record["model"]) if isinstance(record.get("model"), dict) else {},
        classification_type=kind if kind in ("multiclass", "multilabel") else "multiclass",
        top_tag=ordered[0][0] if ordered else None, top_score=ordered[0][1] if ordered else None,
        reason_codes=tuple(str(r["code"]) for r in reasons if isinstance(r.get("code"), str)),
        suggested=suggested, known_tags=tuple(sorted(set(scores) | set(suggested))), record=dict(record),
        moderation=moderation, moderation_api=moderation_api,
        problem="the record beside this copy is malformed: " + "; ".join(problems) if problems else None)


@dataclass(frozen=True)
class ListedCopy:
    name: str
    etag: str
    content_type: str | None
    key: str | None


def list_copies(blob_service: BlobServiceClient, config: ReviewConfig) -> tuple[list[ListedCopy], set[str]]:
    """(image copies with their metadata key, sidecar names) under the review location: one listing."""
    container = blob_service.get_container_client(config.review.container)
    copies, sidecars = [], set()
    for blob in container.list_blobs(name_starts_with=config.review.prefix or None, include=["metadata"]):
        if blob.name.endswith(naming.SIDECAR_SUFFIX):
            sidecars.add(blob.name)
            continue
        settings_ = blob.content_settings
        copies.append(ListedCopy(blob.name, str(blob.etag), settings_.content_type if settings_ else None,
                              (blob.metadata or {}).get("cvops_key")))
    return copies, sidecars


def decided_keys(blob_service: BlobServiceClient, config: ReviewConfig) -> set[str]:
    """Keys that have a decision record (one listing of ``<results>/reviews/``)."""
    folder = config.results.blob(DECISIONS_FOLDER) + "/"
    container = blob_service.get_container_client(config.results.container)
    keys = set()
    for blob in container.list_blobs(name_starts_with=folder):
        stem = blob.name[len(folder):]
        if stem.endswith(".json") and KEY_PATTERN.fullmatch(stem[:-5]):
            keys.add(stem[:-5])
    return keys


def _item(store: BlobStore, config: ReviewConfig, listed: ListedCopy) -> ReviewItem | None:
    record = store.read_json(config.review.container, naming.sidecar_name(listed.name))
    if record is None:
        return None  # the app has not written it yet (its copy comes first), or it is not ours
    return item_from_record(record, copy=f"{config.review.container}/{listed.name}", etag=listed.etag,
                            content_type=listed.content_type)


def _read_items(blob_service: BlobServiceClient, config: ReviewConfig,
                listed: Iterable[ListedCopy]) -> list[ReviewItem | None]:
    """The item of each listed copy, in order (None where its sidecar is missing or not a review record of it)."""
    listed = list(listed)
    if not listed:
        return []
    store = BlobStore(blob_service)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda entry: _item(store, config, entry), listed))


def _items(blob_service: BlobServiceClient, config: ReviewConfig, listed: Iterable[ListedCopy]) -> list[ReviewItem]:
    return [item for item in _read_items(blob_service, config, listed) if item is not None]


ItemCache = MutableMapping[tuple[str, str], ReviewItem]
"""Items already read, by (copy name, copy ETag): what a long-lived reader (the review page) keeps between listings."""


def list_waiting(blob_service: BlobServiceClient, config: ReviewConfig, *,
                 known: ItemCache | None = None) -> list[ReviewItem]:
    """Every review copy with its record that no person has decided yet, oldest arrival first (then by name).

    A copy whose sidecar is missing (the app writes the copy first) or is not a review record of that copy is not
    listed; a decided image whose move is still pending is not listed either (:func:`decisions.complete_pending`
    finishes it). Two listings plus one read per waiting copy.

    ``known``: items read by earlier calls, keyed by the copy's name and ETag, reused and kept up to date here (entries
    whose copy is gone are dropped). Why: the page lists after every decision, and reading every waiting sidecar each
    time made a reviewer's 500th decision cost 500 reads; with ``known`` a listing reads only the copies that are new
    since the last one. A copy's record is written once for its version (a rerun writes the same record), and a copy
    is never replaced in place, so its ETag names its record; "decided" comes from a fresh listing every time.
    """
    copies, sidecars = list_copies(blob_service, config)
    decided = decided_keys(blob_service, config)
    candidates = [c for c in copies if naming.sidecar_name(c.name) in sidecars and c.key not in decided]
    if known is None:
        found = _items(blob_service, config, candidates)
    else:
        todo = [c for c in candidates if (c.name, c.etag) not in known]
        for listed, item in zip(todo, _read_items(blob_service, config, todo), strict=True):
            if item is not None:  # a sidecar not written yet is read again next time
                known[(listed.name, listed.etag)] = item
        live = {(c.name, c.etag) for c in copies}
        for stale in [entry for entry in list(known) if entry not in live]:
            known.pop(stale, None)
        found = [item for item in (known.get((c.name, c.etag)) for c in candidates) if item is not None]
    items = [item for item in found if item.key not in decided]
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(items, key=lambda item: (item.arrived or epoch, item.copy))


def find_copy(blob_service: BlobServiceClient, config: ReviewConfig, key: str) -> ListedCopy | None:
    """The review copy written for record ``key`` (by its ``cvops_key`` metadata), or None."""
    check_key(key)
    copies, _ = list_copies(blob_service, config)
    return next((c for c in copies if c.key == key), None)


def get_item(blob_service: BlobServiceClient, config: ReviewConfig, key: str) -> ReviewItem | None:
    """The review item of ``key`` while its copy and record are in the review location (decided or not: a decision
    whose move is pending still has its item); None when there is none. ValueError for a key that is not one."""
    check_key(key)
    copies, sidecars = list_copies(blob_service, config)
    store = BlobStore(blob_service)
    tagged = [c for c in copies if c.key == key]
    # Copies written before the app tagged them with cvops_key are found by their sidecar's key.
    untagged = [c for c in copies if c.key is None and naming.sidecar_name(c.name) in sidecars]
    for listed in (*tagged, *untagged):
        item = _item(store, config, listed)
        if item is not None and item.key == key:
            return item
    return None


def read_image(blob_service: BlobServiceClient, item: ReviewItem) -> tuple[bytes, str]:
    """The review copy's bytes and a content type safe to serve (:func:`image_type`).
    FileNotFoundError when the copy is gone (decided and moved meanwhile)."""
    try:
        download = blob_service.get_blob_client(item.copy_container, item.copy_name).download_blob()
        data = download.readall()
    except ResourceNotFoundError:
        raise FileNotFoundError(f"review copy {naming.printable(item.copy)} is gone") from None
    return data, image_type(data)


_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"), (b"BM", "image/bmp"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))


def image_type(data: bytes) -> str:
    """The image type the bytes themselves say (their magic number), else ``application/octet-stream``. Never the
    stored Content-Type: whoever wrote the blob chose it (the app copies the upload's, often octet-stream; a hostile
    one could say text/html)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), "application/octet-stream")

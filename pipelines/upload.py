"""`cvops images upload`: send a labelled source to a project in batches of 64, concurrently at the tier's rate,
skipping what is already there.

From Blob, the default sends short-lived read-only SAS URLs (``create_images_from_urls``): the service pulls the images
itself, so no image byte passes through the machine running the command. ``via_bytes`` reads and sends the files
(``create_images_from_files``) for storage the service cannot reach; a local folder always goes that way.

Resuming: an image's source key is recorded (as a digest, see batching.py) only once the service has said the image
is there. Each batch is created carrying just the cvops marker; then one ``update_image_metadata`` call writes the
digests of the batch's succeeded entries (``OK`` and ``OKDuplicate``) onto the images that succeeded. Before sending,
the project's images are listed and every source whose digest is there is skipped. So a failed entry is never
recorded, and whatever breaks between the two calls (the update refused, the process killed, a create retried after
a read timeout that answers ``OKDuplicate``) leaves keys unrecorded, never recorded-but-missing: the next run sends
those images again and the service's own OKDuplicate (same bytes) absorbs the copies.

Killed mid-run: every batch in flight (``concurrency`` of them, 8 by default, so the whole of a 500-image set) has
been sent, and the service goes on creating its images, but the answers that would have recorded them are lost; the
rerun then sent all of them again (the result right, the cost not). So each batch is also created carrying the
digests of *all* its entries as *pending* (``cvops_p0..3``, beside the confirmed ``cvops_k0..3``; 10 metadata pairs
in all, the service's maximum). Pending digests are not keys: an entry may have failed, so they say only "these
sources were sent together". A rerun counts the project's images per pending set: when there are as many as the set
has digests, every entry of that batch has its image (one image per distinct entry: the service keeps one image
per distinct content), and the whole set counts as uploaded; otherwise some entry failed, which one is unknown, and
the batch's sources are sent again as before. See :func:`already_uploaded`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageUrlCreateBatch,
    ImageUrlCreateEntry,
)

from cvops.errors import ConfigurationError, CvopsError
from pipelines import augment as augmentation
from pipelines.batching import (
    DIGEST_CHARS,
    DIGESTS_PER_VALUE,
    EMPTY_SLOT,
    KEY_SLOTS,
    MARKER,
    MARKER_VERSION,
    pack_keys,
    plan_batches,
    source_digest,
    unpack_keys,
)
from pipelines.progress import NullReporter, Reporter
from pipelines.service import Service
from pipelines.sources import ImageSource, SourceImage

SUCCESS = {"OK", "OKDuplicate"}
REASONS = {
    "ErrorSource": "the service could not fetch the image from its URL (is the storage reachable from the service? "
                   "try --via-bytes)",
    "ErrorImageFormat": "not a JPEG, PNG, BMP or GIF image, or the file is damaged",
    "ErrorImageSize": "the file is larger than the 6 MB training upload limit",
    "ErrorImageDimensions": "the image's dimensions are outside the service's limits",
    "ErrorStorage": "the service failed to store the image (transient: run the upload again)",
    "ErrorLimitExceed": "the project holds the most images its tier allows",
    "ErrorTagLimitExceed": "too many tags on the image",
    "ErrorRegionLimitExceed": "too many regions on the image",
    "ErrorInvalidTag": "a tag id is not in the project",
    "ErrorNegativeAndRegularTagOnSameImage": "the negative tag and a regular tag on the same image",
    "ErrorUnknown": "the service failed for an unknown reason (run the upload again)",
}


@dataclass(frozen=True)
class Item:
    """One image to send: an original or an augmented variant."""

    key: str
    tags: tuple[str, ...]
    image: SourceImage
    augment: str | None = None

    @property
    def digest(self) -> str:
        return source_digest(self.key)

    @property
    def path(self) -> str:
        return self.image.location + (f" ({self.augment} variant)" if self.augment else "")


@dataclass(frozen=True)
class Failure:
    key: str
    path: str
    status: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "path": self.path, "status": self.status, "reason": self.reason}


@dataclass
class UploadReport:
    source: str
    mode: str
    listed: int = 0
    augmented: int = 0
    skipped: int = 0
    created: int = 0
    duplicates: int = 0
    batches: int = 0
    create_calls: int = 0
    image_bytes_sent: int = 0
    unrecorded: int = 0  # uploaded, but their keys are not in the project's metadata: the next run resends them
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "mode": self.mode, "listed": self.listed, "augmented": self.augmented,
                "skipped_already_uploaded": self.skipped, "created": self.created, "duplicates": self.duplicates,
                "batches": self.batches, "create_calls": self.create_calls, "image_bytes_sent": self.image_bytes_sent,
                "not_recorded": self.unrecorded,
                "failed": len(self.failures), "failures": [f.to_dict() for f in self.failures]}


PENDING_PREFIX = "cvops_p"


def pack_pending(digests: Sequence[str]) -> dict[str, str]:
    """The pending slots of a batch being created: the digests of every entry sent in it (see the module docstring)."""
    return {f"{PENDING_PREFIX}{slot}": "".join(digests[slot * DIGESTS_PER_VALUE:(slot + 1) * DIGESTS_PER_VALUE])
            or EMPTY_SLOT for slot in range(KEY_SLOTS)}


def unpack_pending(metadata: Mapping[str, str] | None) -> frozenset[str]:
    """The pending digests an image's metadata lists (empty when none, or when cvops did not upload it)."""
    if not metadata or metadata.get(MARKER) != MARKER_VERSION:
        return frozenset()
    out: set[str] = set()
    for slot in range(KEY_SLOTS):
        value = metadata.get(f"{PENDING_PREFIX}{slot}", EMPTY_SLOT)
        if value != EMPTY_SLOT:
            out.update(value[i:i + DIGEST_CHARS] for i in range(0, len(value) - DIGEST_CHARS + 1, DIGEST_CHARS))
    return frozenset(out)


def already_uploaded(metadatas: Iterable[Mapping[str, str] | None]) -> set[str]:
    """Digests of the sources whose images are in the project, from every image's metadata. Pure.

    Confirmed keys count as they are. A pending set (a batch whose answer was never recorded: the run was killed, or
    the recording call failed) counts only when at least as many images carry it as it has digests: each image
    carrying the set was created from a distinct entry of that batch (the service keeps one image per content), so
    then no entry of it failed. A smaller count leaves the whole set to be sent again: never skipped-but-missing.
    """
    confirmed: set[str] = set()
    pending: Counter[frozenset[str]] = Counter()
    for meta in metadatas:
        confirmed |= unpack_keys(meta)
        sent = unpack_pending(meta)
        if sent:
            pending[sent] += 1
    for sent, images in pending.items():
        if images >= len(sent):
            confirmed |= sent
    return confirmed


def _items(images: Sequence[SourceImage], variants: Sequence[augmentation.Variant]) -> list[Item]:
    items = [Item(im.key, im.tags, im) for im in images]
    items += [Item(v.key, v.tags, v.original, v.kind) for v in variants]
    return items


def check_tags(items: Sequence[Item], tag_ids: dict[str, str]) -> None:
    """Every tag the source uses must exist in the project: fail before sending anything, naming them."""
    known = {name.casefold() for name in tag_ids}
    unknown: dict[str, int] = {}
    for item in items:
        for tag in item.tags:
            if tag.casefold() not in known:
                unknown[tag] = unknown.get(tag, 0) + 1
    if unknown:
        listed = ", ".join(f"{t!r} ({n} images)" for t, n in sorted(unknown.items()))
        raise ConfigurationError(f"the source uses tags the project does not have: {listed}",
                                 hint="add them to the spec's tags and run `cvops project apply`, or fix the folder names")


def upload(service: Service, source: ImageSource, project_id: str, *, via_bytes: bool = False, augment: bool = False,
           concurrency: int = 8, sas_minutes: int = 60, reporter: Reporter | None = None) -> UploadReport:
    reporter = reporter or NullReporter()
    with reporter.task(f"listing {source}"):
        images = source.list()
    use_urls = not via_bytes and source.spec.kind in ("blob", "manifest") and all(im.is_blob for im in images)
    report = UploadReport(str(source), "urls" if use_urls else "bytes", listed=len(images))
    variants = augmentation.plan_variants(images) if augment else []
    report.augmented = len(variants)
    items = _items(images, variants)

    tags = service.tags(project_id)
    tag_ids = {t.name.casefold(): t.id for t in tags}
    check_tags(items, {t.name: t.id for t in tags})

    with reporter.task("listing images already in the project"):
        present = already_uploaded(service.image_metadata(project_id))
    pending = [it for it in items if it.digest not in present]
    report.skipped = len(items) - len(pending)

    groups: dict[str | None, list[Item]] = {}
    for item in pending:
        groups.setdefault(item.augment, []).append(item)
    batches: list[list[Item]] = []
    for kind in sorted(groups, key=lambda k: k or ""):
        try:
            batches += plan_batches(groups[kind])
        except ValueError as e:
            raise ConfigurationError(str(e), hint="an image can be sent with at most 20 tags") from None
    report.batches = len(batches)
    if not batches:
        return report

    def send(batch: list[Item]) -> tuple[list[Item], _Outcome | None, CvopsError | None, int]:
        """Create one batch, then record its keys; in a worker, so the recording calls overlap like the creates."""
        # Keys are recorded only after the service answers (_record); pending digests let a killed run's batches
        # be recognised by the next one (already_uploaded).
        meta = {**pack_keys([], augment=batch[0].augment), **pack_pending([it.digest for it in batch])}
        sent_bytes = 0
        try:
            if use_urls and batch[0].augment is None:
                entries = [ImageUrlCreateEntry(url=source.sas_url(it.image, minutes=sas_minutes),
                                               tag_ids=[tag_ids[t.casefold()] for t in it.tags]) for it in batch]
                body = ImageUrlCreateBatch(images=entries, metadata=meta)
                summary = service.training_call(f"create {len(batch)} images from URLs",
                                                lambda c: c.create_images_from_urls(project_id, body))
            else:
                entries = []
                for it in batch:
                    data = source.read(it.image)
                    if it.augment:
                        data = augmentation.render(data, it.augment)
                    sent_bytes += len(data)
                    entries.append(ImageFileCreateEntry(name=it.key, contents=data,
                                                        tag_ids=[tag_ids[t.casefold()] for t in it.tags]))
                body = ImageFileCreateBatch(images=entries, metadata=meta)
                summary = service.training_call(f"create {len(batch)} images from files",
                                                lambda c: c.create_images_from_files(project_id, body))
        except CvopsError as e:
            return batch, None, e, sent_bytes
        except ValueError as e:  # e.g. Pillow could not decode an image to augment
            return batch, None, CvopsError(str(e)), sent_bytes
        return batch, _record(service, project_id, batch, summary), None, sent_bytes

    plural = "es" if len(batches) != 1 else ""
    with reporter.task(f"uploading {len(pending)} images in {len(batches)} batch{plural}", total=len(pending)) as task, \
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for batch, outcome, error, sent in pool.map(send, batches):
            report.image_bytes_sent += sent
            if error is not None:
                report.failures += [Failure(it.key, it.path, getattr(error, "code", None) or "Error", str(error))
                                    for it in batch]
            elif outcome is not None:
                report.create_calls += 1
                report.created += outcome.created
                report.duplicates += outcome.duplicates
                report.unrecorded += outcome.unrecorded
                report.failures += outcome.failures
            task.advance(len(batch))
    return report


@dataclass
class _Outcome:
    """What one batch did; tallied by the worker that sent it, summed into the report by the caller's thread."""

    created: int = 0
    duplicates: int = 0
    unrecorded: int = 0
    failures: list[Failure] = field(default_factory=list)


def _record(service: Service, project_id: str, batch: list[Item], summary: Any) -> _Outcome:
    """Count a batch's per-image outcomes, then record the succeeded entries' keys on the images that succeeded.

    Updated: every ``OK`` image (created just now, marker only) and every ``OKDuplicate`` image whose metadata lists
    no cvops keys (created by an earlier run that stopped before this step, or by a retried create). A duplicate whose
    image already lists keys (same bytes under another source key) is left alone, since the update would replace
    those keys; its own key rides on the batch's other images. When the update fails, the images stay unrecorded
    and are sent again next run: a wasted call, never a skipped image.
    """
    out = _Outcome()
    results = list(summary.images or [])
    ids: list[str] = []
    digests: list[str] = []
    for item, result in zip(batch, _align(batch, results), strict=True):
        status = getattr(result, "status", None) or "ErrorUnknown"
        if status not in SUCCESS:
            out.failures.append(Failure(item.key, item.path, status, REASONS.get(status, status)))
            continue
        if status == "OK":
            out.created += 1
        else:
            out.duplicates += 1
        digests.append(item.digest)
        image = getattr(result, "image", None)
        image_id = getattr(image, "id", None)
        if image_id and (status == "OK" or not unpack_keys(getattr(image, "metadata", None))):
            ids.append(image_id)
    ids = list(dict.fromkeys(ids))  # two entries with the same bytes answer with the same image
    if not ids:
        return out
    meta = pack_keys(digests, augment=batch[0].augment)
    try:
        outcome = service.training_call("record uploaded keys in image metadata",
                                        lambda c: c.update_image_metadata(project_id, ids, meta))
    except CvopsError:
        out.unrecorded += len(ids)
        return out
    out.unrecorded += sum(1 for r in (getattr(outcome, "images", None) or []) if getattr(r, "status", "OK") != "OK")
    return out


def _align(batch: list[Item], results: list[Any]) -> list[Any]:
    """Results in the order of the batch. The service answers one result per entry in order; when it does not, the
    missing entries count as failed rather than guessed."""
    if len(results) == len(batch):
        return results
    return [results[i] if i < len(results) else None for i in range(len(batch))]

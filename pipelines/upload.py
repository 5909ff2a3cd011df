"""`cvops images upload`: send a labelled source to a project in batches of 64, concurrently at the tier's rate,
skipping what is already there.

From Blob, the default sends short-lived read-only SAS URLs (``create_images_from_urls``): the service pulls the images
itself, so no image byte passes through the machine running the command. ``via_bytes`` reads and sends the files
(``create_images_from_files``) for storage the service cannot reach; a local folder always goes that way.

Resuming: each image's source key is kept in the metadata of the images of its batch (see batching.py). Before
sending, the project's images are listed and every source whose key is there is skipped; so a rerun after a crash
sends only what is missing, and the service's own OKDuplicate (same bytes) catches the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from pipelines.batching import pack_keys, plan_batches, source_digest, uploaded_digests
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
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "mode": self.mode, "listed": self.listed, "augmented": self.augmented,
                "skipped_already_uploaded": self.skipped, "created": self.created, "duplicates": self.duplicates,
                "batches": self.batches, "create_calls": self.create_calls, "image_bytes_sent": self.image_bytes_sent,
                "failed": len(self.failures), "failures": [f.to_dict() for f in self.failures]}


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
        present = uploaded_digests(service.image_metadata(project_id))
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

    def send(batch: list[Item]) -> tuple[list[Item], Any, CvopsError | None, int]:
        meta = pack_keys([it.digest for it in batch], augment=batch[0].augment)
        sent_bytes = 0
        try:
            if use_urls and batch[0].augment is None:
                entries = [ImageUrlCreateEntry(url=source.sas_url(it.image, minutes=sas_minutes),
                                               tag_ids=[tag_ids[t.casefold()] for t in it.tags]) for it in batch]
                body = ImageUrlCreateBatch(images=entries, metadata=meta)
                summary = service.t(f"create {len(batch)} images from URLs",
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
                summary = service.t(f"create {len(batch)} images from files",
                                    lambda c: c.create_images_from_files(project_id, body))
        except CvopsError as e:
            return batch, None, e, sent_bytes
        except ValueError as e:  # e.g. Pillow could not decode an image to augment
            return batch, None, CvopsError(str(e)), sent_bytes
        return batch, summary, None, sent_bytes

    plural = "es" if len(batches) != 1 else ""
    with reporter.task(f"uploading {len(pending)} images in {len(batches)} batch{plural}", total=len(pending)) as task, \
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for batch, summary, error, sent in pool.map(send, batches):
            report.image_bytes_sent += sent
            if error is not None:
                report.failures += [Failure(it.key, it.path, getattr(error, "code", None) or "Error", str(error))
                                    for it in batch]
            else:
                report.create_calls += 1
                _record(service, project_id, batch, summary, report)
            task.advance(len(batch))
    return report


def _record(service: Service, project_id: str, batch: list[Item], summary: Any, report: UploadReport) -> None:
    """Count a batch's per-image outcomes; when some failed, rewrite the successes' metadata to list only them."""
    results = list(summary.images or [])
    ok_ids: list[str] = []
    ok_digests: list[str] = []
    failed = False
    for item, result in zip(batch, _align(batch, results), strict=True):
        status = getattr(result, "status", None) or "ErrorUnknown"
        if status == "OK":
            report.created += 1
            ok_ids.append(result.image.id)
            ok_digests.append(item.digest)
        elif status == "OKDuplicate":
            report.duplicates += 1
        else:
            failed = True
            report.failures.append(Failure(item.key, item.path, status, REASONS.get(status, status)))
    if failed and ok_ids:
        meta = pack_keys(ok_digests, augment=batch[0].augment)
        service.t("record uploaded keys in image metadata",
                  lambda c: c.update_image_metadata(project_id, ok_ids, meta))


def _align(batch: list[Item], results: list[Any]) -> list[Any]:
    """Results in the order of the batch. The service answers one result per entry in order; when it does not, the
    missing entries count as failed rather than guessed."""
    if len(results) == len(batch):
        return results
    return [results[i] if i < len(results) else None for i in range(len(batch))]

"""How images are grouped into create-images calls, and how each image's source key is kept in the service.

Limits (:mod:`cvops.limits`, from Microsoft Learn "Limits and quotas"): one batch holds at most 64 images and 20 distinct
tags. Tags go on each entry, so one batch can mix tags; packing greedily in a stable order gives ceil(N/64) calls
whenever a set has at most 20 tags.

Why the source keys are packed: an upload must be resumable after a crash without a local ledger (CI machines keep no
state). v3.4 images carry metadata, but metadata is set per *batch* (``ImageUrlCreateBatch.metadata``), not per entry,
and holds at most 10 pairs of 256 characters. So every image of a batch carries the digests of all images of that
batch: 64 digests of 16 hex characters fill 4 values exactly. Listing the project's images and unioning those digests
gives the set of sources already uploaded. The digests are written only after the service has answered (an update of
the succeeded images, listing only the succeeded entries), never at creation: a key in the project then always means
its image is there, so a rerun can skip it safely (see upload.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

from cvops import limits

MAX_IMAGES_PER_BATCH = limits.MAX_IMAGES_PER_BATCH
MAX_TAGS_PER_BATCH = limits.MAX_TAGS_PER_BATCH
DIGEST_CHARS = 16
DIGESTS_PER_VALUE = limits.MAX_METADATA_VALUE_CHARS // DIGEST_CHARS
KEY_SLOTS = MAX_IMAGES_PER_BATCH // DIGESTS_PER_VALUE
MARKER = "cvops"
MARKER_VERSION = "1"
KEY_PREFIX = "cvops_k"
AUGMENT_KEY = "cvops_augment"
EMPTY_SLOT = "-"


class Tagged(Protocol):
    @property
    def tags(self) -> tuple[str, ...]: ...


T = TypeVar("T", bound=Tagged)


def source_digest(source_key: str) -> str:
    """A short, stable digest of a source key (a path relative to the source root, e.g. ``beach/0001.jpg``).

    64 bits: the chance of two of 100,000 images colliding is about 3e-10.
    """
    return hashlib.sha256(source_key.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def pack_keys(digests: Sequence[str], *, augment: str | None = None) -> dict[str, str]:
    """Batch metadata that names every image of the batch by digest. Every slot is written (``-`` when unused) so a
    later metadata update replaces all of them, whatever the service's merge rule."""
    if len(digests) > MAX_IMAGES_PER_BATCH:
        raise ValueError(f"a batch holds at most {MAX_IMAGES_PER_BATCH} images, got {len(digests)}")
    meta = {MARKER: MARKER_VERSION}
    for slot in range(KEY_SLOTS):
        chunk = digests[slot * DIGESTS_PER_VALUE:(slot + 1) * DIGESTS_PER_VALUE]
        meta[f"{KEY_PREFIX}{slot}"] = "".join(chunk) or EMPTY_SLOT
    if augment:
        meta[AUGMENT_KEY] = augment
    return meta


def unpack_keys(metadata: Mapping[str, str] | None) -> set[str]:
    """The digests an image's metadata lists (empty for images cvops did not upload)."""
    if not metadata or metadata.get(MARKER) != MARKER_VERSION:
        return set()
    out: set[str] = set()
    for slot in range(KEY_SLOTS):
        value = metadata.get(f"{KEY_PREFIX}{slot}", EMPTY_SLOT)
        if value == EMPTY_SLOT:
            continue
        out.update(value[i:i + DIGEST_CHARS] for i in range(0, len(value) - DIGEST_CHARS + 1, DIGEST_CHARS))
    return out


def uploaded_digests(metadatas: Iterable[Mapping[str, str] | None]) -> set[str]:
    """Union of the digests over all images of a project."""
    out: set[str] = set()
    for meta in metadatas:
        out |= unpack_keys(meta)
    return out


def plan_batches(items: Sequence[T], *, max_images: int = MAX_IMAGES_PER_BATCH,
                 max_tags: int = MAX_TAGS_PER_BATCH) -> list[list[T]]:
    """Group items into batches of at most ``max_images`` images and ``max_tags`` distinct tags, in a stable order.

    Items are sorted by tag set first so that sets with more than ``max_tags`` tags still fill batches well. An item
    with more than ``max_tags`` tags of its own cannot be sent at all: ValueError names it.
    """
    batches: list[list[T]] = []
    current: list[T] = []
    current_tags: set[str] = set()
    for item in sorted(items, key=lambda it: tuple(sorted(it.tags))):
        tags = set(item.tags)
        if len(tags) > max_tags:
            raise ValueError(f"{getattr(item, 'key', item)} has {len(tags)} tags; a batch allows at most {max_tags}")
        if current and (len(current) >= max_images or len(current_tags | tags) > max_tags):
            batches.append(current)
            current, current_tags = [], set()
        current.append(item)
        current_tags |= tags
    if current:
        batches.append(current)
    return batches

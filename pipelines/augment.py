"""`cvops images upload --augment`: flipped, rotated and re-lit variants of images of under-represented tags.

Why: a classifier trained on 200 beaches and 20 mountains learns to say "beach". Adding variants of the rare tags'
images is the usual first remedy. Which images get which variant is decided by a pure, deterministic plan (same
source, same variants, so a rerun sends nothing new), and each variant's source key is the original's plus
``#<variant>`` so the upload ledger in image metadata treats variants like any other image.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageEnhance, ImageOps

from pipelines.sources import SourceImage

VARIANTS: tuple[str, ...] = ("flip", "rotate10", "bright125", "dark80")


@dataclass(frozen=True)
class Variant:
    """One augmented image to make: ``original`` transformed by ``kind``. Its ``key`` is unique and stable."""

    original: SourceImage
    kind: str

    @property
    def key(self) -> str:
        return f"{self.original.key}#{self.kind}"

    @property
    def tags(self) -> tuple[str, ...]:
        return self.original.tags


def tag_counts(images: Sequence[SourceImage]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for image in images:
        counts.update(image.tags)
    return counts


def plan_variants(images: Sequence[SourceImage], *, ratio: float = 0.8) -> list[Variant]:
    """Variants that bring each tag with fewer than ``ratio`` x the largest tag's count up towards that count, using
    at most ``len(VARIANTS)`` variants per original (beyond that the "new" images are near copies and overfit)."""
    counts = tag_counts(images)
    if not counts:
        return []
    target = max(counts.values())
    plan: list[Variant] = []
    added: Counter[str] = Counter()
    for tag in sorted(counts, key=lambda t: (counts[t], t)):
        if counts[tag] >= ratio * target:
            continue
        originals = sorted((im for im in images if tag in im.tags), key=lambda im: im.key)
        for kind in VARIANTS:
            for original in originals:
                if counts[tag] + added[tag] >= target:
                    break
                variant = Variant(original, kind)
                if any(v.key == variant.key for v in plan):
                    continue
                plan.append(variant)
                added.update(original.tags)
    return plan


def render(data: bytes, kind: str) -> bytes:
    """The variant's bytes, in the original's format (JPEG stays JPEG so the size stays similar)."""
    with Image.open(io.BytesIO(data)) as opened:
        fmt = opened.format or "PNG"
        image = ImageOps.exif_transpose(opened).convert("RGB")
    if kind == "flip":
        image = ImageOps.mirror(image)
    elif kind == "rotate10":
        # Rotate, then crop to the largest centred rectangle with no empty corners, back at the original size.
        w, h = image.size
        rotated = image.rotate(10, resample=Image.Resampling.BICUBIC, expand=False)
        image = ImageOps.fit(rotated.crop((w // 10, h // 10, w - w // 10, h - h // 10)), (w, h))
    elif kind.startswith(("bright", "dark")):
        factor = int("".join(ch for ch in kind if ch.isdigit())) / 100
        image = ImageEnhance.Brightness(image).enhance(factor)
    else:
        raise ValueError(f"unknown augmentation {kind!r}; known: {', '.join(VARIANTS)}")
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=92)
    else:
        image.save(out, "PNG")
    return out.getvalue()

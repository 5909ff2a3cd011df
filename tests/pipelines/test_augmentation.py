"""Augmentation: variants only for under-represented tags, deterministic, and real image transforms."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from devkit import scenes
from pipelines import augment
from pipelines.sources import SourceImage


def imgs(tag, n):
    return [SourceImage(f"{tag}/{i}.jpg", (tag,), f"/x/{tag}/{i}.jpg") for i in range(n)]


def test_only_tags_below_the_ratio_get_variants_up_to_the_largest_count():
    images = imgs("beach", 20) + imgs("city", 18) + imgs("forest", 5)
    plan = augment.plan_variants(images)
    assert {v.tags for v in plan} == {("forest",)}
    assert len(plan) == 15  # 5 originals x 3 variants brings forest to 20
    assert len({v.key for v in plan}) == len(plan)
    assert plan == augment.plan_variants(list(reversed(images)))


def test_variants_per_original_are_capped():
    plan = augment.plan_variants(imgs("beach", 100) + imgs("city", 2))
    assert len(plan) == 2 * len(augment.VARIANTS)


def test_a_balanced_set_gets_no_variants():
    assert augment.plan_variants(imgs("beach", 10) + imgs("city", 9)) == []


def test_each_variant_is_a_different_image_of_the_same_size_and_format():
    data = scenes.generate("beach", 3, size=(96, 64))
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)
    for kind in augment.VARIANTS:
        out = Image.open(io.BytesIO(augment.render(data, kind)))
        assert (out.format, out.size) == ("JPEG", (96, 64))
        assert np.abs(np.asarray(out.convert("RGB"), dtype=float) - original).mean() > 2, kind
    flipped = np.asarray(Image.open(io.BytesIO(augment.render(data, "flip"))).convert("RGB"), dtype=float)
    assert np.abs(flipped[:, ::-1] - original).mean() < 4

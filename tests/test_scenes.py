"""The scene generator: deterministic, varied, the sizes and formats asked for, and bad files that really are bad."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from devkit import scenes


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_same_label_and_seed_give_the_same_bytes():
    assert scenes.generate("beach", 7) == scenes.generate("beach", 7)
    assert scenes.generate(("city", "mountain"), 7, fmt="PNG") == scenes.generate(("mountain", "city"), 7, fmt="PNG")


def test_different_seeds_and_labels_give_different_images():
    images = {scenes.generate(label, seed) for label in scenes.CLASSES for seed in range(3)}
    assert len(images) == 12


@pytest.mark.parametrize("label", [*scenes.CLASSES, *scenes.MULTILABEL_COMBOS])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_every_class_and_combination_renders_at_the_requested_size_and_format(label, fmt):
    img = _decode(scenes.generate(label, 3, size=(300, 200), fmt=fmt))
    assert img.format == fmt
    assert img.size == (300, 200)
    assert img.mode == "RGB"
    # not a flat picture: a scene has structure
    assert np.asarray(img, dtype=np.float32).std() > 15


def test_default_sizes_vary_between_256_and_640_pixels_wide():
    sizes = {_decode(scenes.generate("forest", seed)).size for seed in range(12)}
    assert len(sizes) > 5
    assert all(256 <= w <= 640 and 192 <= h <= 640 for w, h in sizes)


def test_classes_differ_where_a_photo_would():
    """Forests are green, beaches warm at the bottom (sand), cities grey: a sanity check of what is painted."""

    def mean_rgb(label: str, region: slice) -> np.ndarray:
        pixels = [np.asarray(scenes.render(label, s, size=(160, 120)), np.float32)[region] for s in range(8)]
        return np.mean([p.reshape(-1, 3).mean(axis=0) for p in pixels], axis=0)

    whole, bottom = slice(None), slice(96, None)
    forest, city = mean_rgb("forest", whole), mean_rgb("city", whole)
    assert forest[1] > forest[0] and forest[1] > forest[2]  # green dominates
    assert forest[1] - forest[2] > city[1] - city[2]
    sand = mean_rgb("beach", bottom)
    assert sand[0] > sand[2]  # warm bottom


def test_dataset_gives_named_labelled_images_and_other_seeds_give_other_images():
    train = scenes.dataset(["beach", ("beach", "forest")], 3, seed=1, size=(128, 96))
    held_out = scenes.dataset(["beach", ("beach", "forest")], 3, seed=2, size=(128, 96))
    assert [item.labels for item in train] == [("beach",)] * 3 + [("beach", "forest")] * 3
    assert len({item.name for item in train}) == 6
    assert all(item.name.endswith(".jpg") for item in train)
    assert not {item.data for item in train} & {item.data for item in held_out}
    assert scenes.dataset(["city"], 2, seed=1, fmt="PNG")[0].name.endswith(".png")


def test_unknown_label_or_format_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"'desert'.*beach, forest, mountain, city"):
        scenes.generate("desert", 1)
    with pytest.raises(ValueError, match="'TIFF'"):
        scenes.generate("beach", 1, fmt="TIFF")
    with pytest.raises(ValueError, match="at least one label"):
        scenes.generate((), 1)


def test_two_hundred_images_take_a_few_seconds():
    started = time.perf_counter()
    scenes.dataset(scenes.CLASSES, 25, seed=5, size=(400, 300))
    elapsed = time.perf_counter() - started
    assert elapsed * 2 < 10, f"100 images of 400x300 took {elapsed:.1f} s: 200 would take over 10 s"


def test_truncated_jpeg_starts_like_a_jpeg_but_cannot_be_decoded():
    data = scenes.truncated_jpeg()
    assert data[:2] == b"\xff\xd8"
    with pytest.raises(OSError, match="truncated"):
        _decode(data)


def test_text_file_is_not_an_image():
    with pytest.raises(UnidentifiedImageError):
        _decode(scenes.text_file())


def test_oversized_png_is_a_valid_image_above_the_upload_limit():
    data = scenes.oversized_png()
    assert len(data) > 6 * 1024 * 1024
    assert _decode(data).format == "PNG"
    assert len(scenes.oversized_png(min_bytes=100_000)) > 100_000


def test_tiny_image_is_valid_and_tiny():
    img = _decode(scenes.tiny_image((16, 12)))
    assert img.size == (16, 12)

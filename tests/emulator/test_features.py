"""Image features: any image the service accepts decodes the same way upright, fast; broken bytes get a clear error."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from devkit import scenes
from emulator.features import (
    DECODE_SIZE,
    FEATURE_DIM,
    FEATURE_GROUPS,
    FEATURE_VERSION,
    extract_features,
    features_of_image,
    load_rgb,
)
from emulator.images import decode_image


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    return scenes.render("mountain", 21, size=(320, 240))


def _encode(img: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def test_features_are_a_finite_float32_vector_of_the_documented_length(scene):
    vector = extract_features(_encode(scene, "JPEG"))
    assert vector.dtype == np.float32
    assert vector.shape == (FEATURE_DIM,)
    assert np.isfinite(vector).all()
    assert FEATURE_VERSION


def test_feature_groups_tile_the_vector_without_gaps():
    covered = np.zeros(FEATURE_DIM, dtype=int)
    for part in FEATURE_GROUPS.values():
        covered[part] += 1
    assert (covered == 1).all()


def test_extraction_takes_a_few_milliseconds_per_image():
    images = [item.data for item in scenes.dataset(scenes.CLASSES, 5, seed=4, size=(640, 480))]
    extract_features(images[0])
    started = time.perf_counter()
    for data in images:
        extract_features(data)
    per_image_ms = (time.perf_counter() - started) / len(images) * 1000
    assert per_image_ms < 30, f"{per_image_ms:.1f} ms per 640x480 image (target < 10 ms)"


def test_exif_orientation_is_applied_before_features(scene):
    upright = extract_features(_encode(scene, "PNG"))
    # a phone stores the sensor's pixels (here: the scene turned 90 degrees) and an Orientation tag saying how to turn
    stored = scene.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    with_tag = extract_features(_encode(stored, "PNG", exif=exif.tobytes()))
    without_tag = extract_features(_encode(stored, "PNG"))
    np.testing.assert_array_equal(with_tag, upright)
    assert not np.allclose(without_tag, upright)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("P", "PNG"), ("P", "GIF"), ("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("RGB", "BMP")],
)
def test_every_mode_the_service_accepts_becomes_rgb(scene, mode, fmt):
    data = _encode(scene.convert(mode), fmt)
    pixels = load_rgb(data)
    assert pixels.shape == (128, 128, 3) and pixels.dtype == np.uint8
    reference = load_rgb(_encode(scene, "PNG")).astype(np.float32)
    if mode in ("L", "LA"):
        reference = np.repeat(reference @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(reference.shape)
    # the same picture, up to palette quantisation and colour-space conversion
    assert np.abs(pixels.astype(np.float32) - reference).mean() < 12


def test_sixteen_bit_greyscale_is_scaled_not_clipped(scene):
    grey8 = np.asarray(scene.convert("L"), dtype=np.uint16)
    sixteen = Image.fromarray((grey8 * 257).astype(np.uint16))
    assert sixteen.mode == "I;16"
    pixels = load_rgb(_encode(sixteen, "PNG"))
    reference = load_rgb(_encode(scene.convert("L"), "PNG"))
    assert np.abs(pixels.astype(int) - reference.astype(int)).max() <= 2


def test_transparent_pixels_are_shown_on_white():
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    assert (load_rgb(_encode(img, "PNG")) == 255).all()


def test_animated_gif_uses_its_first_frame():
    first = scenes.render("beach", 1, size=(200, 150))
    second = scenes.render("city", 1, size=(200, 150))
    animated = _encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    np.testing.assert_array_equal(extract_features(animated), extract_features(_encode(first, "GIF")))
    assert not np.allclose(extract_features(animated), extract_features(_encode(second, "GIF")))


def test_mirror_gives_the_features_of_the_flipped_image(scene):
    flipped = scene.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    mirrored = extract_features(_encode(scene, "PNG"), mirror=True)
    np.testing.assert_allclose(mirrored, extract_features(_encode(flipped, "PNG")), atol=1e-5)
    assert not np.allclose(mirrored, extract_features(_encode(scene, "PNG")))


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"", "empty"),
        (scenes.text_file(), "not a format"),
        (scenes.truncated_jpeg(), "damaged or truncated"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot read image"),
    ],
    ids=["empty", "text-named-jpg", "truncated-jpeg", "png-header-only"],
)
def test_undecodable_bytes_raise_value_error_saying_what_to_do(data, hint):
    with pytest.raises(ValueError, match=hint) as caught:
        extract_features(data)
    assert "upload" in str(caught.value)


def _with_orientation(img: Image.Image, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(img.transpose(Image.Transpose.ROTATE_90), fmt, exif=exif.tobytes())


@pytest.mark.parametrize(
    "make",
    [
        lambda s: _encode(s.resize((2048, 1536)), "JPEG", quality=92),  # decoded at 1/4 scale
        lambda s: _encode(s.resize((700, 300)), "JPEG"),  # 1/2 scale
        lambda s: _encode(s.convert("CMYK"), "JPEG"),
        lambda s: _with_orientation(s, "JPEG"),
        lambda s: _encode(s.convert("RGBA"), "PNG"),
        lambda s: _encode(Image.fromarray(np.asarray(s.convert("L"), dtype=np.uint16) * 257), "PNG"),
        lambda s: _encode(s, "GIF", save_all=True, append_images=[s.rotate(90)]),
        lambda s: _encode(s, "BMP"),
    ],
    ids=["jpeg-2048", "jpeg-700", "jpeg-cmyk", "jpeg-exif-rotated", "png-rgba", "png-16bit", "gif-animated", "bmp"],
)
def test_features_of_the_checked_decode_equal_features_of_the_bytes(scene, make):
    """The service checks an image and computes its features from one decode: the numbers must be those that
    `extract_features` gives from the bytes, or models trained before and after would disagree."""
    data = make(scene)
    decoded = decode_image(data, reduce_to=DECODE_SIZE)
    np.testing.assert_array_equal(features_of_image(decoded.pixels), extract_features(data))
    np.testing.assert_array_equal(features_of_image(decoded.pixels, mirror=True), extract_features(data, mirror=True))

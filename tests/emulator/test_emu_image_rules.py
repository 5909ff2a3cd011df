"""The image rules the service applies before it accepts an upload (pure functions, no server)."""

from __future__ import annotations

import io

import pytest
from cv_samples import png
from PIL import Image

from cvops import scenes
from emulator import images


def test_accepts_png_and_reports_size_and_hash():
    info = images.inspect_image(png(40, 30))
    assert (info.format, info.width, info.height) == ("PNG", 40, 30)
    assert len(info.sha256) == 64


@pytest.mark.parametrize("fmt", ["JPEG", "BMP", "GIF"])
def test_accepts_the_other_documented_formats(fmt):
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(buf, format=fmt)
    assert images.inspect_image(buf.getvalue()).format == fmt


def test_refuses_text_as_image_format_error():
    with pytest.raises(images.ImageRejected) as exc:
        images.inspect_image(scenes.text_file())
    assert exc.value.status == "ErrorImageFormat"


def test_refuses_truncated_jpeg_as_image_format_error():
    with pytest.raises(images.ImageRejected) as exc:
        images.inspect_image(scenes.truncated_jpeg())
    assert exc.value.status == "ErrorImageFormat"


def test_refuses_tiff_naming_the_supported_formats():
    buf = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buf, format="TIFF")
    with pytest.raises(images.ImageRejected, match="JPEG, PNG, BMP or GIF") as exc:
        images.inspect_image(buf.getvalue())
    assert exc.value.status == "ErrorImageFormat"


def test_size_limit_is_6_mb_for_training_and_4_mb_for_prediction():
    data = png(8, 8) + b"\0" * (5 * 1024 * 1024)  # trailing bytes after IEND still decode
    assert images.inspect_image(data).format == "PNG"
    with pytest.raises(images.ImageRejected) as exc:
        images.inspect_image(data, max_bytes=images.MAX_PREDICTION_IMAGE_BYTES)
    assert exc.value.status == "ErrorImageSize"
    with pytest.raises(images.ImageRejected):
        images.inspect_image(b"\0" * (images.MAX_TRAINING_IMAGE_BYTES + 1))


def test_refuses_extreme_aspect_ratio_and_long_sides():
    with pytest.raises(images.ImageRejected) as exc:
        images.inspect_image(png(260, 10))
    assert exc.value.status == "ErrorImageDimensions"
    with pytest.raises(images.ImageRejected, match="10240"):
        images.inspect_image(png(10_241, 1000))


def test_renditions_are_small_jpegs():
    data, content_type = images.rendition(png(800, 600), "thumbnail")
    assert content_type == "image/jpeg"
    assert max(Image.open(io.BytesIO(data)).size) <= images.THUMBNAIL_SIDE

"""The image rules the service applies before it accepts an upload (pure functions, no server)."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from cv_samples import png
from PIL import Image

from devkit import scenes
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


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG that claims a size but holds a few bytes of pixel data: what a hostile or broken upload can send."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_dimensions_are_judged_from_the_header_before_any_pixel_is_decoded():
    with pytest.raises(images.ImageRejected, match="10240") as exc:
        images.decode_image(png_header_claiming(12_000, 3_000))  # no pixel data at all: never decoded
    assert exc.value.status == "ErrorImageDimensions"


def test_a_header_claiming_a_decompression_bomb_is_a_dimensions_error_not_a_crash():
    with pytest.raises(images.ImageRejected, match="10240") as exc:
        images.decode_image(png_header_claiming(20_000, 20_000))
    assert exc.value.status == "ErrorImageDimensions"


@pytest.mark.parametrize("keep_fraction", [0.02, 0.3, 0.6, 0.9, 0.99])
def test_a_reduced_scale_decode_refuses_a_truncated_jpeg_as_the_full_decode_does(keep_fraction):
    data = scenes.generate("forest", 5, size=(1600, 1200))
    cut = data[: int(len(data) * keep_fraction)]
    for reduce_to in (None, (256, 256)):
        with pytest.raises(images.ImageRejected) as exc:
            images.decode_image(cut, reduce_to=reduce_to)
        assert exc.value.status == "ErrorImageFormat"


def test_a_reduced_scale_decode_reports_the_stored_size_and_decodes_fewer_pixels():
    data = scenes.generate("city", 2, size=(2048, 1536))
    decoded = images.decode_image(data, reduce_to=(256, 256))
    assert (decoded.format, decoded.width, decoded.height) == ("JPEG", 2048, 1536)
    assert decoded.pixels.size == (512, 384)  # 1/4 scale: the smallest JPEG scale still at least 256 on both sides
    assert decoded.sha256() == images.inspect_image(data).sha256
    assert images.decode_image(png(300, 200), reduce_to=(256, 256)).pixels.size == (300, 200)  # only JPEG scales

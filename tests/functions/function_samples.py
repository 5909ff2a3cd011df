"""Images for the Function App's tests, made with Pillow in the test run (none are committed).

Each helper makes one kind of file an operator really receives; names say which.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = (200, 120, 40), fmt: str = "JPEG") -> bytes:
    """A plain image with a gradient, so it compresses like a photo rather than a flat fill."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image = Image.blend(image, Image.new("RGB", size, colour), 0.6)
    return encode(image, fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def noisy_jpeg(size: tuple[int, int], quality: int = 95) -> bytes:
    """Random noise: the worst case for JPEG, so a modest size gives many bytes."""
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    return encode(image, "JPEG", quality=quality)


def jpeg_of_about(n_bytes: int, seed_size: tuple[int, int] = (1200, 900)) -> bytes:
    """A JPEG of roughly ``n_bytes`` that needs no change (the benchmark's 1 MB photo)."""
    width, height = seed_size
    data = noisy_jpeg((width, height), quality=85)
    while len(data) < n_bytes * 0.9:
        width, height = int(width * 1.1), int(height * 1.1)
        data = noisy_jpeg((width, height), quality=85)
    return data


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", (300, 200), (0, 128, 255, 10)), "JPEG", quality=90)


def png_16_bit_grey() -> bytes:
    image = Image.linear_gradient("L").resize((300, 200)).convert("I")
    image = image.point(lambda v: v * 257).convert("I;16")
    return encode(image, "PNG")


def png_48_bit_rgb(size: tuple[int, int] = (64, 48)) -> bytes:
    """An RGB PNG with 16 bits per sample, written by hand (Pillow cannot write one)."""
    width, height = size
    raw = b"".join(
        b"\x00" + b"".join(struct.pack(">HHH", x * 1000 % 65536, y * 1000 % 65536, 30000) for x in range(width))
        for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def animated_gif(frames: int = 3) -> bytes:
    images = [Image.new("RGB", (120, 80), (i * 60 % 256, 100, 255 - i * 50 % 256)) for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)


def exif_rotated_jpeg(orientation: int = 6, size: tuple[int, int] = (300, 200)) -> bytes:
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=90, exif=exif)


def tiff() -> bytes:
    return encode(Image.new("RGB", (100, 80), (10, 200, 10)), "TIFF")


def webp() -> bytes:
    return encode(Image.new("RGB", (100, 80), (10, 10, 200)), "WEBP")


def ico() -> bytes:
    return encode(Image.new("RGB", (32, 32), (1, 2, 3)), "ICO")


def png_bomb(side: int = 40_000) -> bytes:
    """A tiny PNG whose header declares ``side`` x ``side`` grey pixels: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * side
    body = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def wide_png(size: tuple[int, int]) -> bytes:
    return encode(Image.new("L", size, 128), "PNG")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]

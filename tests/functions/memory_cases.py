"""Worst-case images for memory (small files, big decodes) and a child process that measures their real peak.

Shared by tests/functions/test_fn_memory_budget.py (asserts) and bench/bench_memory.py (prints the table).
Pillow allocates pixel buffers with malloc, outside tracemalloc's view, so the peak is the process's resident set:
``VmHWM`` from /proc/self/status, reset first through /proc/self/clear_refs, in a fresh child per measurement so one
case's pages cannot hide another's.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(size: tuple[int, int], color_type: int, bit_depth: int = 8, *, rows: int | None = None,
        palette: bool = False) -> bytes:
    """A PNG written row by row (never held decoded): ``rows`` short of the height declares more than it holds."""
    width, height = size
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = b"\x00" + bytes(math.ceil(width * channels * bit_depth / 8))
    compressor = zlib.compressobj(6)
    parts = []
    left = height if rows is None else rows
    while left:
        batch = min(left, 64)
        parts.append(compressor.compress(row * batch))
        left -= batch
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    extra = _chunk(b"PLTE", bytes(range(256)) * 3) if palette else b""
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", b"".join(parts)) + \
        _chunk(b"IEND", b"")


def bmp_rle8(size: tuple[int, int]) -> bytes:
    """An 8-bit RLE BMP: each row one run per 255 pixels, so a few bytes a row decode to ``width`` pixels."""
    width, height = size
    runs = b"".join(bytes((min(255, width - x), 7)) for x in range(0, width, 255))
    pixels = (runs + b"\x00\x00") * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(size: tuple[int, int], mode: str = "RGB", **options) -> bytes:
    colour = {"RGB": (90, 140, 200), "CMYK": (10, 80, 160, 20), "L": 100}[mode]
    return _save(Image.new(mode, size, colour), "JPEG", quality=85, **options)


def tiff_float(size: tuple[int, int]) -> bytes:
    return _save(Image.new("F", size, 0.5), "TIFF", compression="tiff_adobe_deflate")


def tiff_pages(size: tuple[int, int], pages: int) -> bytes:
    frames = [Image.new("RGB", size, (i % 256, 50, 90)) for i in range(pages)]
    return _save(frames[0], "TIFF", save_all=True, append_images=frames[1:], compression="tiff_adobe_deflate")


def gif(size: tuple[int, int], frames: int = 1) -> bytes:
    images = [Image.new("P", size, i % 256) for i in range(frames)]
    return _save(images[0], "GIF", save_all=frames > 1, append_images=images[1:], duration=40)


def webp_animated(size: tuple[int, int], frames: int) -> bytes:
    images = [Image.new("RGBA", size, (i * 7 % 256, 90, 30, 255)) for i in range(frames)]
    return _save(images[0], "WEBP", save_all=True, append_images=images[1:], duration=40, lossless=True, method=0)


def photo_jpeg() -> bytes:
    """The everyday case: a ~1 MB photo-like JPEG that needs no change."""
    noise = Image.frombytes("RGB", (1200, 900), os.urandom(1200 * 900 * 3))
    return _save(noise, "JPEG", quality=85)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]


CASES: tuple[Case, ...] = (
    Case("RGBA PNG 10950x10950 (issue's case)", lambda: png((10950, 10950), 6)),
    Case("RGBA PNG 10240x10240 (issue 17, model path)", lambda: png((10240, 10240), 6)),
    Case("RGBA PNG 6500x6500", lambda: png((6500, 6500), 6)),
    Case("RGBA PNG 10300x3000 (over the side limit)", lambda: png((10300, 3000), 6)),
    Case("RGBA PNG 10400x1500 (over the side limit)", lambda: png((10400, 1500), 6)),
    Case("16-bit grey PNG 10950x10950", lambda: png((10950, 10950), 0, 16)),
    Case("16-bit grey PNG 6000x6000", lambda: png((6000, 6000), 0, 16)),
    Case("48-bit RGB PNG 4000x4000", lambda: png((4000, 4000), 2, 16)),
    Case("float (F) TIFF 10950x10950", lambda: tiff_float((10950, 10950))),
    Case("float (F) TIFF 3000x3000", lambda: tiff_float((3000, 3000))),
    Case("1-bit PNG 10950x10950", lambda: png((10950, 10950), 0, 1)),
    Case("1-bit PNG 8000x8000", lambda: png((8000, 8000), 0, 1)),
    Case("palette PNG 10950x10950", lambda: png((10950, 10950), 3, palette=True)),
    Case("CMYK JPEG 8000x8000", lambda: jpeg((8000, 8000), "CMYK")),
    Case("JPEG 10240x10240", lambda: jpeg((10240, 10240))),
    Case("JPEG 12000x10000", lambda: jpeg((12000, 10000))),
    Case("progressive JPEG 10240x10240", lambda: jpeg((10240, 10240), progressive=True)),
    Case("progressive 4:4:4 JPEG 7000x7000", lambda: jpeg((7000, 7000), progressive=True, subsampling=0)),
    Case("GIF 10950x10950", lambda: gif((10950, 10950))),
    Case("GIF 8000x8000", lambda: gif((8000, 8000))),
    Case("animated GIF 640x480, 300 frames", lambda: gif((640, 480), 300)),
    Case("animated WebP 1500x1500, 40 frames", lambda: webp_animated((1500, 1500), 40)),
    Case("BMP RLE8 10950x10950", lambda: bmp_rle8((10950, 10950))),
    Case("BMP RLE8 5000x5000", lambda: bmp_rle8((5000, 5000))),
    Case("TIFF 1000x1000, 60 pages", lambda: tiff_pages((1000, 1000), 60)),
    Case("PNG declaring 10950x10950, 10 rows of data", lambda: png((10950, 10950), 6, rows=10)),
    Case("PNG declaring 6500x6500, 10 rows of data", lambda: png((6500, 6500), 6, rows=10)),
    Case("photo JPEG ~1 MB", photo_jpeg),
)


def write_cases(folder: Path, cases: tuple[Case, ...] = CASES) -> dict[str, Path]:
    """Each case's file in ``folder`` (made once; reused when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for index, case in enumerate(cases):
        path = folder / f"case{index:02d}.img"
        if not path.exists():
            path.write_bytes(case.make())
        paths[case.name] = path
    return paths


_CHILD = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
flags = sys.argv[2].split(",")
if "app" in flags:
    import function_app  # noqa: F401  the app's own footprint, as in the worker
from functions.images import MemoryEstimate, NormalisedImage, decode_for_model, memory_plan, normalise, reserved
model_side = next((int(flag[6:]) for flag in flags if flag.startswith("model=")), None)

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(key)

paths = sys.argv[3:]
with open("/proc/self/clear_refs", "w") as reset:
    reset.write("5")
base = status("VmRSS")
datas = [open(p, "rb").read() for p in paths]
results = [None] * len(datas)
plans = [memory_plan(d, model_side=model_side) for d in datas]

def run(i):
    results[i] = result = normalise(datas[i], model_side=model_side)
    if model_side is None or not isinstance(result, NormalisedImage):
        return
    # What the model runner (functions.exported_model.predict_checked) does next: the picture validation made, or
    # else a decode of the bytes under a reservation; then the resize to the model's input.
    picture = result.decoded
    if picture is None:
        plan = memory_plan(result.data, model_side=model_side)
        with reserved(result.decode_bytes or getattr(plan, "peak_bytes", 0)):
            picture = decode_for_model(result.data, model_side)
    picture.convert("RGB").resize((model_side, model_side))

started = time.perf_counter()
threads = [threading.Thread(target=run, args=(i,)) for i in range(len(datas))]
for t in threads:
    t.start()
for t in threads:
    t.join()
seconds = time.perf_counter() - started
peak = status("VmHWM")
out = []
for r in results:
    if isinstance(r, NormalisedImage):
        smaller = any(w in c for c in r.changes for w in ("downscaled", "shrunk", "decoded at"))
        out.append({"decision": "shrunk" if smaller else "accepted",
                    "detail": f"{r.format} {r.width}x{r.height}; " + "; ".join(r.changes)})
    else:
        out.append({"decision": "quarantined", "detail": f"{r.reason}: {r.message}"})
for entry, plan in zip(out, plans):
    entry["estimate"] = plan.peak_bytes if isinstance(plan, MemoryEstimate) else None
print(json.dumps({"base": base, "peak": peak, "seconds": seconds, "results": out}))
"""


def measure(paths: list[Path], *, with_app: bool = False, model_side: int | None = None, timeout: float = 120) -> dict:
    """Validate ``paths`` at once (one thread each) in a fresh Python; its RSS before reading them and at its peak.

    ``peak - base`` is what the images cost (their bytes included); ``peak`` alone is the whole process.
    ``model_side``: the in-process model's path (``CVOPS_MODEL``): validation with ``model_side`` and the model's
    picture brought to its input size, as the runner does; the estimates are then the model path's plans.
    """
    flags = ("app" if with_app else "bare") + (f",model={model_side}" if model_side is not None else "")
    command = [sys.executable, "-c", _CHILD, str(ROOT), flags, *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measuring child failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])

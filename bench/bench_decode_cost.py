"""CPU and memory of validating the costliest files the Function App accepts, and of refusing the CPU bombs (issue 17).

Builds (with Pillow, numpy and byte by byte, in tests/functions/decode_cost_cases.py and memory_cases.py) the worst
file per format that the app accepts: JPEG baseline at the pixel cap and with the most entropy data the input limit
allows, progressive at the scan and block-visit limits, arithmetic-coded at the block-visit limit, PNG, GIF, BMP,
TIFF and WebP at their limits; and the bombs of the issue, which must be refused in milliseconds.

Each file is validated in a fresh Python process per path: the Prediction API path (``images.normalise(data)``, its
scan check inline) and the in-process model path (``normalise(data, model_side=224)``, then the model's own decode,
``decode_for_model``, when the check did not already give the picture, as ``ExportedModel.predict_checked`` does).
The child reports its CPU seconds (``time.process_time``, every thread) around that work and its peak resident set
above what it held before (VmHWM after resetting it). Prints one line per file and path; flags anything over 2 s of
CPU or 200 MiB. Then the eight costliest accepted files of each path are validated at once in one process, on eight
threads as eight invocations of the app would be: CPU seconds, wall seconds and peak resident set of the lot (against
the instance's 2,048 MiB). Asserts nothing (tests/functions/test_fn_decode_cost.py does).
Run: ``python bench/bench_decode_cost.py`` (``--keep DIR`` reuses generated files; ``--only WORD`` runs the cases
whose name contains it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from a fresh clone
sys.path.insert(0, str(ROOT / "tests" / "functions"))

import decode_cost_cases as dc  # noqa: E402
import memory_cases as mc  # noqa: E402
from PIL import Image  # noqa: E402

from functions.decode_cost import COST_LIMITS  # noqa: E402
from functions.images import MEMORY_BUDGET_BYTES, MiB  # noqa: E402

CPU_TARGET_SECONDS = 2.0
"""Issue 17's target for one accepted image: at most 2 s of CPU (and the memory budget, 200 MiB)."""


def _noise_jpeg(size: tuple[int, int], quality: int, *, corner: int | None = None, **options) -> bytes:
    """High-entropy JPEG: the most Huffman data a file of this size can hold, decoded block by block. ``corner``: the
    last 64x64 pixels flat at that value (128 is libjpeg's fill for missing blocks)."""
    import numpy as np

    pixels = np.random.default_rng(7).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    if corner is not None:
        pixels[-64:, -64:, :] = corner
    return mc._save(Image.fromarray(pixels, "RGB"), "JPEG", quality=quality, **options)


def _worst_path(jpeg: bytes) -> bytes:
    """A grey last block and a libjpeg warning: the scan check's strict decode cannot decide, the picture test finds
    the fill value and decodes twice more. Junk before the last scan: for a one-scan file that is header garbage,
    which the strict decode no longer reads (it decides alone); for a progressive one it is between scans."""
    return _with_warning(jpeg)


def _with_warning(jpeg: bytes) -> bytes:
    """Junk before the last scan: libjpeg warns ("extraneous bytes before marker 0xda")."""
    last = jpeg.rindex(b"\xff\xda")
    return jpeg[:last] + b"\x12" * 100 + jpeg[last:]


def _padded_before_end(jpeg: bytes) -> bytes:
    """Junk in front of the end marker: libjpeg warns only after the last block, which proves the file whole."""
    end = jpeg.rindex(b"\xff\xd9")
    return jpeg[:end] + b"\x12" * 100 + jpeg[end:]


def _late_restart_warning(size: tuple[int, int], quality: int) -> bytes:
    """The costliest JPEG path: noise with restart markers and a flat grey last corner, one restart marker near the
    end numbered wrong. libjpeg's strict decode reads nearly all the data before it warns ("found marker 0xd. instead
    of RST."), then the picture test reads it three more times (its 1/4-scale decode finds the fill value, so two
    padded decodes follow), then the conversion decodes it once more."""
    import numpy as np

    pixels = np.random.default_rng(7).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    pixels[-64:, -64:, :] = 128
    data = bytearray(mc._save(Image.fromarray(pixels, "RGB"), "JPEG", quality=quality, restart_marker_blocks=64))
    late = [i for i in range(len(data) - 200_000, len(data) - 1) if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7]
    data[late[0] + 1] = 0xD0 + (data[late[0] + 1] - 0xD0 + 3) % 8
    return bytes(data)


def _cmyk_noise_jpeg(size: tuple[int, int], quality: int) -> bytes:
    """CMYK noise at the input limit with a last corner at the fill value (Adobe CMYK stores it inverted: 127 is a
    zero coefficient): TurboJPEG does not decode CMYK, so the picture test decides, with both padded decodes."""
    import numpy as np

    pixels = np.random.default_rng(7).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    pixels[-64:, -64:, :] = 127
    return mc._save(Image.fromarray(pixels, "CMYK"), "JPEG", quality=quality)


def _png_many_chunks(chunks: int) -> bytes:
    png = mc.png((64, 64), 2)
    return png[:33] + mc._chunk(b"abCd", b"") * chunks + png[33:]


def _bmp_rle_single_runs(size: tuple[int, int]) -> bytes:
    """An RLE8 BMP of one-pixel runs: two bytes a pixel, all decoded in Python by Pillow."""
    width, height = size
    pixels = (bytes((1, 7)) * width + b"\x00\x00") * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = mc.struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + mc.struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def _webp(size: tuple[int, int], **options) -> bytes:
    return mc._save(Image.effect_noise(size, 30).convert("RGB"), "WEBP", **options)


_LIMIT = COST_LIMITS
_GREY_8000_BLOCKS = 1000 * 1000
CASES: tuple[tuple[str, Callable[[], bytes]], ...] = (
    # accepted: the worst per format
    ("JPEG baseline 12000x10000 (pixel cap)", lambda: mc.jpeg((12000, 10000))),
    ("JPEG baseline noise 7000x5000 q90 (entropy data)", lambda: _noise_jpeg((7000, 5000), 90)),
    ("JPEG baseline noise 7000x5000 q90, warning", lambda: _worst_path(_noise_jpeg((7000, 5000), 90,
                                                                                   corner=128))),
    ("JPEG progressive noise 3000x2350, 5.8 MB data, warning", lambda: _worst_path(_noise_jpeg(
        (3000, 2350), 90, progressive=True, corner=128))),
    ("JPEG progressive 4:4:4 7000x7000 (libjpeg script)", lambda: mc.jpeg((7000, 7000), progressive=True,
                                                                          subsampling=0)),
    ("JPEG progressive grey 8000x8000, 1+22 scans (visit cap)",
     lambda: dc.many_scan_jpeg((8000, 8000), _LIMIT.max_jpeg_block_visits // _GREY_8000_BLOCKS - 2)),
    ("JPEG grey 8000x8000, 1+22 scans, libjpeg warning (4 decodes)",
     lambda: _with_warning(dc.many_scan_jpeg((8000, 8000), _LIMIT.max_jpeg_block_visits // _GREY_8000_BLOCKS - 2))),
    (f"JPEG progressive grey 1720x1720, {_LIMIT.max_jpeg_scans} scans (scan cap)",
     lambda: dc.many_scan_jpeg((1720, 1720), _LIMIT.max_jpeg_scans - 1)),
    ("JPEG arithmetic grey 8000x8000, 1+10 scans (visit cap)",
     lambda: dc.many_scan_jpeg((8000, 8000), _LIMIT.max_jpeg_block_visits // (2 * _GREY_8000_BLOCKS) - 2,
                               arithmetic=True)),
    ("PNG RGBA 6500x6500", lambda: mc.png((6500, 6500), 6)),
    ("PNG palette 10950x10950 (pixel cap)", lambda: mc.png((10950, 10950), 3, palette=True)),
    ("PNG 16-bit grey 6000x6000", lambda: mc.png((6000, 6000), 0, 16)),
    (f"PNG of {_LIMIT.max_png_chunks:,} chunks (chunk cap)", lambda: _png_many_chunks(_LIMIT.max_png_chunks - 3)),
    ("GIF 8000x8000", lambda: mc.gif((8000, 8000))),
    (f"GIF of {_LIMIT.max_frames:,} frames (frame cap)", lambda: dc.gif_frames(_LIMIT.max_frames)),
    (f"GIF, {_LIMIT.max_gif_comment_bytes:,} one-byte comment sub-blocks (cap)",
     lambda: dc.gif_comments(0, _LIMIT.max_gif_comment_bytes)),
    (f"GIF, {_LIMIT.max_gif_extension_blocks - 10:,} empty comment extensions (cap)",
     lambda: dc.gif_comments(_LIMIT.max_gif_extension_blocks - 10)),
    ("BMP RLE8 10950x10950", lambda: mc.bmp_rle8((10950, 10950))),
    ("BMP RLE8 one-pixel runs, 5 MiB (RLE cap)", lambda: _bmp_rle_single_runs((1800, 1450))),
    ("TIFF float 3000x3000", lambda: mc.tiff_float((3000, 3000))),
    (f"TIFF of {_LIMIT.max_frames:,} pages (page cap)", lambda: dc.tiff_pages(_LIMIT.max_frames)),
    ("TIFF raw 5000x5000 in 16x16 tiles (97,969 tiles)", lambda: dc.tiff_tiles((5000, 5000))),
    ("TIFF JPEG-compressed grey 5000x5000, 1+98 scans", lambda: dc.tiff_jpeg((5000, 5000), 98)),
    ("WEBP lossy 4000x3000", lambda: _webp((4000, 3000), quality=80)),
    ("WEBP animated 1500x1500, 40 frames", lambda: mc.webp_animated((1500, 1500), 40)),
    ("photo JPEG ~1 MB", mc.photo_jpeg),
    ("JPEG baseline noise 7000x5000 q90, padded before its end marker",
     lambda: _padded_before_end(_noise_jpeg((7000, 5000), 90, corner=128))),
    ("JPEG baseline noise 7000x5000 q88, restarts, a late one misnumbered (the costliest JPEG path)",
     lambda: _late_restart_warning((7000, 5000), 88)),
    ("JPEG CMYK noise 5000x3500 q60 at the input limit, fill-valued corner", lambda: _cmyk_noise_jpeg((5000, 3500), 60)),
    # refused: the bombs of issue 17
    ("REFUSED JPEG progressive noise 6000x4400 q90 (21.6 MB)", lambda: _noise_jpeg((6000, 4400), 90,
                                                                                  progressive=True)),
    ("BOMB JPEG progressive grey 8000x8000, 300 KB of scans",
     lambda: dc.many_scan_jpeg((8000, 8000), 300_000 // 80)),
    ("BOMB JPEG arithmetic grey 8000x8000, 1 MB of scans",
     lambda: dc.many_scan_jpeg((8000, 8000), 1_000_000 // 10, arithmetic=True)),
    ("BOMB JPEG 7 M empty comment segments", lambda: mc.jpeg((64, 64))[:2] + b"\xff\xfe\x00\x02" * 7_000_000
     + mc.jpeg((64, 64))[2:]),
    ("BOMB TIFF 8 MB of pages", lambda: dc.tiff_pages(8_000_000 // 106)),
    ("BOMB GIF 1 M frames", lambda: dc.gif_frames(1_000_000)),
    ("BOMB GIF 1 M empty comment extensions (3 MB)", lambda: dc.gif_comments(1_000_000)),
    ("BOMB GIF one comment of 1 M one-byte sub-blocks", lambda: dc.gif_comments(0, 1_000_000)),
    ("BOMB PNG 2.5 M empty chunks", lambda: _png_many_chunks(2_500_000)),
    ("BOMB BMP RLE8 one-pixel runs, 16 MB", lambda: _bmp_rle_single_runs((4000, 2000))),
    # accepted, last so that a --keep folder of an earlier run keeps its numbering: issue 17's PNG, which the model
    # path decodes in strips (functions/png_strips.py), the costliest accepted PNG there
    ("PNG RGBA 10240x10240 (issue 17's; model path in strips)",
     next(case.make for case in mc.CASES if case.name == "RGBA PNG 10240x10240 (issue 17, model path)")),
)

_CHILD = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from functions.images import NormalisedImage, decode_for_model, normalise

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(key)

def validate(path):
    data = open(path, "rb").read()
    if sys.argv[2] == "model":
        result = normalise(data, model_side=224)
        if isinstance(result, NormalisedImage) and result.decoded is None:
            with decode_for_model(result.data, 224) as picture:
                picture.convert("RGB").resize((224, 224))
    else:
        result = normalise(data)
    if isinstance(result, NormalisedImage):
        return "accepted" + (" (" + "; ".join(result.changes)[:60] + ")" if result.changes else "")
    return result.reason

with open("/proc/self/clear_refs", "w") as reset:
    reset.write("5")
base = status("VmRSS")
started, wall = time.process_time(), time.perf_counter()
with ThreadPoolExecutor(max_workers=len(sys.argv) - 3) as pool:
    verdicts = list(pool.map(validate, sys.argv[3:]))
print(json.dumps({"cpu": time.process_time() - started, "wall": time.perf_counter() - wall,
                  "peak": status("VmHWM") - base, "process_peak": status("VmHWM"), "verdicts": verdicts}))
"""
"""Validates the files named after the mode on as many threads of this fresh process (one file: one thread), and
reports CPU seconds, wall seconds, peak RSS above the start and each file's verdict."""
AT_ONCE = 8
"""The costliest accepted files validated at once: the Functions host's default concurrency on one instance."""


def _run_child(paths: list[Path], mode: str, timeout: float) -> dict:
    command = [sys.executable, "-c", _CHILD, str(ROOT), mode, *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
    if done.returncode != 0:
        return {"cpu": None, "wall": None, "peak": None,
                "failed": f"child failed ({done.returncode}): {done.stderr[-300:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_at_once(paths: list[Path], mode: str, timeout: float = 1800) -> dict:
    """The files validated at once on as many threads of one fresh process: CPU s, wall s, peak RSS."""
    return _run_child(paths, mode, timeout)


def measure(path: Path, mode: str, timeout: float = 900) -> dict:
    """One file validated in a fresh process: CPU s, peak RSS, verdict."""
    result = _run_child([path], mode, timeout)
    return {**result, "verdict": result.get("failed") or result["verdicts"][0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="folder for the generated files (kept and reused)")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="cvops-decode-cost-"))
    folder.mkdir(parents=True, exist_ok=True)
    header = f"{'case':<58} {'file bytes':>11} {'path':<5} {'CPU s':>7} {'peak MiB':>8}  verdict"
    print(header)
    print("-" * len(header))
    worst_cpu = worst_peak = 0.0
    costliest: dict[str, list[tuple[float, Path]]] = {"api": [], "model": []}
    titles: dict[Path, str] = {}
    for index, (name, make) in enumerate(CASES):
        if args.only and args.only.lower() not in name.lower():
            continue
        path = folder / f"case{index:02d}.img"
        if not path.exists():
            started = time.perf_counter()
            path.write_bytes(make())
            print(f"  (built {name} in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
        for mode in ("api", "model"):
            result = measure(path, mode)
            cpu, peak = result["cpu"], result["peak"]
            flags = ""
            if cpu is not None and cpu > CPU_TARGET_SECONDS:
                flags += "  OVER 2 s"
            if peak is not None and peak > MEMORY_BUDGET_BYTES:
                flags += "  OVER 200 MiB"
            if cpu is not None and "accepted" in result["verdict"]:
                worst_cpu, worst_peak = max(worst_cpu, cpu), max(worst_peak, peak)
                costliest[mode].append((cpu, path))
                titles[path] = name
            cpu_text = "-" if cpu is None else f"{cpu:.3f}"
            peak_text = "-" if peak is None else f"{peak / MiB:,.0f}"
            print(f"{name:<58} {path.stat().st_size:>11,} {mode:<5} {cpu_text:>7} {peak_text:>8}  "
                  f"{result['verdict']}{flags}", flush=True)
    print(f"\nworst accepted: {worst_cpu:.2f} s of CPU, {worst_peak / MiB:,.0f} MiB peak "
          f"(targets {CPU_TARGET_SECONDS:g} s, {MEMORY_BUDGET_BYTES // MiB} MiB); files in {folder}")
    for mode, found in costliest.items():
        paths = [path for _, path in sorted(found, key=lambda item: item[0], reverse=True)[:AT_ONCE]]
        if len(paths) < 2:
            continue
        result = measure_at_once(paths, mode)
        if result["cpu"] is None:
            print(f"{len(paths)} costliest accepted at once, {mode} path: {result['failed']}")
            continue
        print(f"{len(paths)} costliest accepted at once, {mode} path: {result['cpu']:.2f} s of CPU in "
              f"{result['wall']:.2f} s, {result['peak'] / MiB:,.0f} MiB peak above the process's start "
              f"({result['process_peak'] / MiB:,.0f} MiB process); {'; '.join(titles[p] for p in paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

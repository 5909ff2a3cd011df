"""Peak memory of validating the worst images the Function App can receive, against its budget.

Generates every case in tests/functions/memory_cases.py (small files that decode big: RGBA, 16-bit, float, 1-bit
and palette images at the pixel cap, CMYK and progressive JPEGs, huge and animated GIFs, animated WebP, RLE BMP,
many-page TIFF, a PNG that declares more than it holds), validates each in a fresh Python process and reads its
peak resident set (VmHWM; Pillow's buffers are invisible to tracemalloc). Then runs eight at once (eight threads in
one process that has imported function_app, as the worker has): eight copies of the worst case, and the eight
worst cases together; and sixteen copies, more than host.json's blob parallelism, which the memory gate holds to
its pool.

Prints a table: case, file size, decision (accepted / shrunk / quarantined with its reason), the plan's estimate
and the measured peak per image against the 200 MiB budget; then the eight-at-once peaks against the 2,048 MiB
instance. Both for the Prediction API's path and for the in-process model's (``CVOPS_MODEL``: validation also
makes the model's picture, for a 224 px input). Asserts nothing (tests/functions/test_fn_memory_budget.py does).
Run: ``python bench/bench_memory.py`` (``--keep DIR`` to reuse generated files between runs, ``--path api|model``
for one path).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from a fresh clone
sys.path.insert(0, str(ROOT / "tests" / "functions"))

import memory_cases as mc  # noqa: E402

from functions.images import HOST_ALLOWANCE_BYTES, INSTANCE_MEMORY_BYTES, MEMORY_BUDGET_BYTES, MiB  # noqa: E402


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / MiB:,.0f}"


MODEL_SIDE = 224
"""The input side of a Custom Vision compact export (and the local service's): the model path's figures use it."""


def _path_figures(paths: dict[str, Path], model_side: int | None) -> None:
    """One table (each case alone) and the eight-at-once runs, for the API path or the in-process model's path."""
    title = "API path (validation, bytes sent to the Prediction API)" if model_side is None else \
        f"model path (CVOPS_MODEL: validation and the picture for a model of input side {model_side})"
    header = f"{'case':<46} {'file bytes':>11} {'est MiB':>8} {'peak MiB':>9}  decision"
    print(f"{title}\n{header}\n{'-' * len(header)}")
    peaks: dict[str, int] = {}
    for name, path in paths.items():
        measured = mc.measure([path], model_side=model_side)
        result = measured["results"][0]
        peak = measured["peak"] - measured["base"]
        peaks[name] = peak
        decision = result["decision"]
        if decision == "quarantined":
            decision += " (" + result["detail"].split(":")[0] + ")"
        elif decision == "shrunk":
            decision += " to " + result["detail"].split(";")[0]
        flag = "  OVER BUDGET" if peak > MEMORY_BUDGET_BYTES else ""
        print(f"{name:<46} {path.stat().st_size:>11,} {_mib(result['estimate']):>8} {_mib(peak):>9}  {decision}{flag}")
    worst = max(peaks, key=peaks.__getitem__)
    print(f"\nper-image budget {_mib(MEMORY_BUDGET_BYTES)} MiB; worst measured {_mib(peaks[worst])} MiB ({worst})")
    limit = INSTANCE_MEMORY_BYTES - HOST_ALLOWANCE_BYTES
    eight_worst = sorted(peaks, key=peaks.__getitem__, reverse=True)[:8]
    runs = ((f"8 x {worst}", [worst] * 8), ("the 8 worst cases together", eight_worst),
            (f"16 x {worst} (queue batch beside blobs; the gate holds them to the pool)", [worst] * 16))
    for label, names in runs:
        began = time.perf_counter()
        measured = mc.measure([paths[name] for name in names], with_app=True, model_side=model_side)
        print(f"{len(names)} at once, {label}: process peak {_mib(measured['peak'])} MiB (app and interpreter "
              f"{_mib(measured['base'])} MiB) against {_mib(INSTANCE_MEMORY_BYTES)} MiB per instance "
              f"({_mib(limit)} MiB after the host's allowance), {time.perf_counter() - began:.1f} s")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="folder for the generated files (kept and reused)")
    parser.add_argument("--path", choices=("api", "model", "both"), default="both",
                        help="which path to measure: the Prediction API's, the in-process model's, or both")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="cvops-memory-"))
    started = time.perf_counter()
    paths = mc.write_cases(folder)
    print(f"generated {len(paths)} cases in {time.perf_counter() - started:.1f} s ({folder})\n")
    if args.path in ("api", "both"):
        _path_figures(paths, None)
    if args.path in ("model", "both"):
        _path_figures(paths, MODEL_SIDE)
    return 0


if __name__ == "__main__":
    sys.exit(main())

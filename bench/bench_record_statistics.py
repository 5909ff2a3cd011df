"""What the result record's image statistics cost per image (issue 20): the luminance of pixels validation decodes
anyway, and the EXIF camera from the header already parsed.

Times, on a 12 MP JPEG (a 4000 x 3000 scene from devkit/scenes.py, about 3 MB): :func:`functions.images.luminance`
on the 1/8-scale grey decode the scan check makes (what a record measures on the Prediction API path), on the model
picture (``CVOPS_MODEL`` with a 224 input: libjpeg's 1/4 decode, 1000 x 750 RGB), :func:`functions.images.exif_camera`
on the opened header, and the whole ``normalise`` for scale. Best of 7 repeats. Asserts nothing. Run:
``python bench/bench_record_statistics.py``.
"""

from __future__ import annotations

import io
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from a fresh clone

import simplejpeg  # noqa: E402
from PIL import Image  # noqa: E402

from devkit import scenes  # noqa: E402
from functions import images  # noqa: E402


def best_ms(call, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=7)) / number * 1000


def main() -> None:
    data = scenes.camera_shot("city", 3, make="Contoso", model="Cam-1", size=(4000, 3000))
    grey = Image.fromarray(simplejpeg.decode_jpeg(data, colorspace="GRAY", min_width=1, min_height=1)[:, :, 0], "L")
    model = images.normalise(data, model_side=224).decoded
    print(f"12 MP JPEG, {len(data):,} bytes; 1/8 grey decode {grey.size[0]}x{grey.size[1]}, "
          f"model picture {model.size[0]}x{model.size[1]}")
    print(f"luminance of the scan check's decode: {best_ms(lambda: images.luminance(grey, 'scan_check'), 200):.3f} ms")
    print(f"luminance of the model picture:       {best_ms(lambda: images.luminance(model, 'model_picture'), 200):.3f} ms")
    opened = Image.open(io.BytesIO(data))
    print(f"EXIF camera from the header:          {best_ms(lambda: images.exif_camera(opened), 2000):.3f} ms")
    print(f"whole normalise (for scale):          {best_ms(lambda: images.normalise(data), 5):.2f} ms")


if __name__ == "__main__":
    main()

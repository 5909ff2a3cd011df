"""Seeded, procedurally drawn outdoor scenes: the images the tests, the benchmarks and the demo train on.

No photographs can be downloaded here and none may be committed, yet the local Custom Vision service must be shown
to really learn. So this module paints photo-like scenes with numpy and Pillow: sky gradients with clouds and a sun,
sea with waves and foam over sand, forests of textured conifers and broadleaf trees, mountain ranges with snow caps
and haze, city blocks with window grids lit at night. Each image varies time of day, light, colour temperature,
composition, scale, crop, mirror, sensor noise, blur and JPEG quality, so telling the classes apart takes real
features rather than one pixel's colour. Multi-label scenes (``("beach", "forest")``, ``("city", "mountain")``...)
combine the layers in one picture, for Multilabel projects.

Everything is a pure function of ``(labels, seed, size)``: the same call gives the same bytes, on any machine.

Also here: the "bad files" an operator meets in real life (a truncated JPEG, text named ``.jpg``, an image above the
6 MB upload limit, a thumbnail-sized image), so the demo and the tests can show how each is handled.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cvops import limits

CLASSES: tuple[str, ...] = ("beach", "forest", "mountain", "city")
"""The scene classes the generator knows."""

MULTILABEL_COMBOS: tuple[tuple[str, ...], ...] = (
    ("beach", "forest"),
    ("city", "mountain"),
    ("forest", "mountain"),
    ("beach", "city"),
    ("city", "forest"),
    ("beach", "mountain"),
)
"""Pairs that make believable pictures (a wooded shore, a city under mountains...), for Multilabel datasets."""

FORMATS = ("JPEG", "PNG")
UPLOAD_LIMIT_BYTES = limits.MAX_TRAINING_BYTES  # Custom Vision's training upload limit ("Limits and quotas")

Label = str | tuple[str, ...]


class SceneImage(NamedTuple):
    """One generated image: a file name, its labels and its encoded bytes."""

    name: str
    labels: tuple[str, ...]
    data: bytes


# ----------------------------------------------------------------------------------------------------------------------
# public API


def generate(label: Label, seed: int, *, size: tuple[int, int] | None = None, fmt: str = "JPEG") -> bytes:
    """Encoded bytes of one scene showing `label` (a class or a tuple of classes), deterministic for `seed`.

    `size` is (width, height); by default it is drawn from the seed (256-640 px wide, 192-640 high, aspect 3:4 to
    16:9), because real uploads come in many sizes. `fmt` is "JPEG" (quality drawn from the seed, like photos from
    many cameras) or "PNG".
    """
    if fmt.upper() not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; use one of {', '.join(FORMATS)}")
    labels = normalize_labels(label)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, zlib.crc32("+".join(labels).encode())])
    image = _render(labels, rng, size)
    buffer = io.BytesIO()
    if fmt.upper() == "JPEG":
        image.save(buffer, "JPEG", quality=int(rng.integers(72, 96)))
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def render(label: Label, seed: int, *, size: tuple[int, int] | None = None) -> Image.Image:
    """The scene as a Pillow RGB image before encoding (what `generate` encodes), for callers that want pixels."""
    labels = normalize_labels(label)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, zlib.crc32("+".join(labels).encode())])
    return _render(labels, rng, size)


def dataset(
    classes: Iterable[Label],
    per_class: int,
    seed: int,
    *,
    size: tuple[int, int] | None = None,
    fmt: str = "JPEG",
) -> list[SceneImage]:
    """`per_class` images of each entry of `classes` (a class name, or a tuple of names for a multi-label scene).

    Image seeds come from numpy's SeedSequence over (seed, entry, index), so datasets made with different `seed`s
    do not share images: one seed for training, another for a held-out test set.
    """
    if per_class < 0:
        raise ValueError(f"per_class must be 0 or more, got {per_class}")
    extension = ".jpg" if fmt.upper() == "JPEG" else ".png"
    items: list[SceneImage] = []
    for entry in classes:
        labels = normalize_labels(entry)
        key = "+".join(labels)
        seeds = np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(key.encode())]).generate_state(per_class, np.uint64)
        for index, image_seed in enumerate(seeds):
            data = generate(labels, int(image_seed), size=size, fmt=fmt)
            items.append(SceneImage(f"{key}_{seed}_{index:04d}{extension}", labels, data))
    return items


def camera_shot(label: Label, seed: int, *, make: str, model: str, exposure: float = 1.0,
                size: tuple[int, int] | None = None) -> bytes:
    """A JPEG of a scene as one camera takes it: its EXIF ``Make`` and ``Model``, and its ``exposure`` (0.5: every
    pixel half as bright, a new camera whose images are darker). For monitoring's tests and demo: a drift planted in
    one slice, seen by its image statistics and its EXIF camera."""
    image = render(label, seed, size=size)
    if exposure != 1.0:
        image = image.point(lambda v: min(255, round(v * exposure)))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def normalize_labels(label: Label) -> tuple[str, ...]:
    """Labels as a sorted tuple of known classes; ValueError naming an unknown one."""
    labels = (label,) if isinstance(label, str) else tuple(label)
    if not labels:
        raise ValueError("a scene needs at least one label; choose from " + ", ".join(CLASSES))
    for name in labels:
        if name not in CLASSES:
            raise ValueError(f"unknown scene label {name!r}; choose from {', '.join(CLASSES)}")
    return tuple(sorted(set(labels), key=CLASSES.index))


# ----------------------------------------------------------------------------------------------------------------------
# bad files


def truncated_jpeg(seed: int = 0, *, keep_fraction: float = 0.5) -> bytes:
    """A real scene JPEG cut after `keep_fraction` of its bytes, as an interrupted upload leaves it."""
    data = generate("beach", seed, size=(320, 240))
    return data[: max(2, int(len(data) * keep_fraction))]


def text_file() -> bytes:
    """Bytes of a text file, which users do save under a ``.jpg`` name."""
    return b"This is a text file that was saved with a .jpg extension.\nIt is not an image.\n"


def oversized_png(min_bytes: int = UPLOAD_LIMIT_BYTES + 1, seed: int = 0) -> bytes:
    """A valid PNG of random noise larger than `min_bytes` (default: just over the 6 MB training upload limit).

    Noise does not compress, so the pixel count needed is known in advance and one encoding suffices.
    """
    rng = np.random.default_rng(seed)
    pixels = int(min_bytes / 3 * 1.01) + 1024
    width = int(np.ceil(np.sqrt(pixels * 4 / 3)))
    height = int(np.ceil(pixels / width))
    noise = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise, "RGB").save(buffer, "PNG", compress_level=1)
    data = buffer.getvalue()
    assert len(data) > min_bytes, "noise PNG unexpectedly compressed"  # cannot happen: random bytes are incompressible
    return data


def tiny_image(size: tuple[int, int] = (16, 16), *, fmt: str = "PNG", seed: int = 0) -> bytes:
    """A valid but thumbnail-sized scene (Custom Vision upscales anything under 256 px; the demo shows the effect)."""
    return generate("forest", seed, size=size, fmt=fmt)


# ----------------------------------------------------------------------------------------------------------------------
# rendering

_TIMES = ("day", "golden", "sunset", "overcast", "night")
_TIME_WEIGHTS_CITY = (0.45, 0.12, 0.1, 0.15, 0.18)
_TIME_WEIGHTS_NATURE = (0.6, 0.15, 0.1, 0.15, 0.0)  # dark nature photos are rare and tell nothing apart

# (sky top, sky at horizon, light on the ground) per time of day, RGB in 0..1
_SKY = {
    "day": ((0.22, 0.42, 0.82), (0.68, 0.80, 0.95), (1.0, 1.0, 1.0)),
    "golden": ((0.32, 0.46, 0.78), (0.98, 0.80, 0.55), (1.05, 0.92, 0.75)),
    "sunset": ((0.18, 0.18, 0.42), (0.98, 0.52, 0.28), (0.85, 0.62, 0.50)),
    "overcast": ((0.58, 0.60, 0.64), (0.80, 0.80, 0.82), (0.80, 0.81, 0.84)),
    "night": ((0.01, 0.02, 0.07), (0.08, 0.10, 0.22), (0.22, 0.24, 0.33)),
}


@dataclass
class _Scene:
    """The canvas and the choices shared by all layers of one picture."""

    rng: np.random.Generator
    img: np.ndarray  # (H, W, 3) float32 in 0..1
    time: str
    light: np.ndarray  # (3,) multiplier for lit surfaces
    horizon_color: np.ndarray
    horizon: int  # y of the horizon in pixels
    shore: np.ndarray | None = None  # y of the waterline per column, set by the sea for the sand

    @property
    def h(self) -> int:
        return self.img.shape[0]

    @property
    def w(self) -> int:
        return self.img.shape[1]

    def lit(self, rgb: Sequence[float] | np.ndarray, jitter: float = 0.0) -> np.ndarray:
        """A surface colour under this scene's light, with optional random jitter."""
        color = np.asarray(rgb, dtype=np.float32)
        if jitter:
            color = color + self.rng.uniform(-jitter, jitter, 3).astype(np.float32)
        return np.clip(color, 0, 1) * self.light

    def paint(self, mask: np.ndarray, color: np.ndarray, y0: int = 0) -> None:
        """Blend `color` ((3,) or (h, W, 3)) into rows y0.. of the canvas through `mask` ((h, W), 0..1)."""
        region = self.img[y0 : y0 + mask.shape[0]]
        m = mask[..., None]
        region *= 1 - m
        region += m * color

    def noise(self, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
        """Smooth value noise of shape (h, w) in about 0..1, with `cells` = (rows, cols) of random control points."""
        rows, cols = max(2, cells[0]), max(2, cells[1])
        small = self.rng.random((rows, cols), dtype=np.float32)
        return np.asarray(Image.fromarray(small, "F").resize((max(1, w), max(1, h)), Image.Resampling.BICUBIC))


def _render(labels: tuple[str, ...], rng: np.random.Generator, size: tuple[int, int] | None) -> Image.Image:
    width, height = _choose_size(rng, size)
    present = set(labels)
    weights = _TIME_WEIGHTS_CITY if "city" in present else _TIME_WEIGHTS_NATURE
    time = _TIMES[rng.choice(len(_TIMES), p=np.asarray(weights) / sum(weights))]
    top, bottom, light = (np.asarray(c, dtype=np.float32) for c in _SKY[time])
    top = np.clip(top + rng.uniform(-0.06, 0.06, 3), 0, 1).astype(np.float32)
    bottom = np.clip(bottom + rng.uniform(-0.06, 0.06, 3), 0, 1).astype(np.float32)

    if "city" in present and len(present) == 1:
        horizon_frac = rng.uniform(0.45, 0.7)
    elif "mountain" in present:
        horizon_frac = rng.uniform(0.5, 0.72)
    else:
        horizon_frac = rng.uniform(0.3, 0.62)
    scene = _Scene(rng, np.empty((height, width, 3), np.float32), time, light, bottom, int(height * horizon_frac))

    # Real photos of one class often show a little of another (a lake under the peaks, a headland off the beach,
    # street trees in town): single-class scenes get such distractors sometimes, so colour alone does not decide.
    single = len(present) == 1
    _sky(scene, top, bottom)
    if "mountain" in present:
        _mountains(scene, low="city" in present or "forest" in present)
    elif "beach" in present and single and rng.random() < 0.35:
        _mountains(scene, low=True, hills=True)
    if "beach" in present:
        _sea(scene)
    else:
        _ground(scene, urban="city" in present)
        if present == {"mountain"} and rng.random() < 0.3:
            _lake(scene)
    if "city" in present:
        _city(scene, distant="beach" in present, behind_mountains="mountain" in present)
    if "beach" in present:
        _sand(scene)
    if "forest" in present:
        _forest(scene, role=_forest_role(present, rng))
    elif present == {"city"} and rng.random() < 0.35:
        _forest(scene, role="street")
    return _camera(scene)


def _choose_size(rng: np.random.Generator, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is not None:
        width, height = int(size[0]), int(size[1])
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive (width, height), got {size!r}")
        return width, height
    width = int(rng.integers(256, 641))
    aspect = float(rng.choice([0.75, 1.0, 4 / 3, 1.5, 16 / 9]))
    return width, int(np.clip(width / aspect, 192, 640))


def _forest_role(present: set[str], rng: np.random.Generator) -> str:
    if present == {"forest"}:
        return "full" if rng.random() < 0.7 else "sparse"
    if "beach" in present:
        return "side"
    return "foreground"


def _sky(scene: _Scene, top: np.ndarray, bottom: np.ndarray) -> None:
    h, w, rng = scene.h, scene.w, scene.rng
    t = np.clip(np.linspace(0, 1, h, dtype=np.float32) / max(scene.horizon / h, 0.05), 0, 1) ** 0.8
    scene.img[:] = (top + (bottom - top) * t[:, None])[:, None, :]
    if scene.time == "night":
        stars = rng.random((scene.horizon, w)) > 0.997
        scene.img[: scene.horizon][stars] = rng.uniform(0.6, 1.0)
    elif scene.time != "overcast" and rng.random() < 0.55:
        _sun(scene)
    cover = {"overcast": 0.9, "night": 0.1}.get(scene.time, rng.uniform(0.0, 0.6))
    if cover > 0.05:
        sky_h = max(2, scene.horizon)
        n = scene.noise(sky_h, w, (int(rng.integers(3, 7)), int(rng.integers(4, 12))))
        n = 0.7 * n + 0.3 * scene.noise(sky_h, w, (12, 30))
        mask = np.clip((n - (1 - cover)) * 3, 0, 1) * rng.uniform(0.5, 0.95)
        shade = rng.uniform(0.75, 1.0) if scene.time != "overcast" else rng.uniform(0.55, 0.8)
        cloud = np.minimum(1.0, scene.horizon_color * 0.3 + shade * 0.8) * (0.35 if scene.time == "night" else 1.0)
        scene.paint(mask.astype(np.float32), cloud.astype(np.float32))


def _sun(scene: _Scene) -> None:
    rng = scene.rng
    cx = rng.uniform(0.1, 0.9) * scene.w
    cy = rng.uniform(0.15, 1.0) * scene.horizon
    radius = rng.uniform(0.025, 0.06) * max(scene.w, scene.h)
    y0 = max(0, int(cy - radius * 4))
    y1 = max(y0 + 1, min(scene.horizon, int(cy + radius * 4)))
    yy, xx = np.mgrid[y0:y1, 0 : scene.w].astype(np.float32)
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / radius
    glow = np.clip(1.0 - d / 4, 0, 1) ** 2 * 0.6
    disc = np.clip((1.15 - d) * 5, 0, 1)
    color = np.array([1.0, 0.95, 0.8] if scene.time == "day" else [1.0, 0.75, 0.45], np.float32)
    scene.paint(np.maximum(glow, disc).astype(np.float32), color, y0)


def _ridge(rng: np.random.Generator, w: int, peaks: int, base: float, height: float) -> np.ndarray:
    """y of a mountain ridge per column: a few triangular peaks plus fractal roughness."""
    x = np.arange(w, dtype=np.float32)
    y = np.full(w, base, np.float32)
    for _ in range(peaks):
        center = rng.uniform(-0.1, 1.1) * w
        half = rng.uniform(0.15, 0.45) * w
        top = height * rng.uniform(0.5, 1.0)
        y = np.minimum(y, base - top * np.clip(1 - np.abs(x - center) / half, 0, 1) ** rng.uniform(0.8, 1.3))
    rough = np.zeros(w, np.float32)
    for octave in range(1, 6):
        points = 2**octave + 2
        rough += np.interp(x, np.linspace(0, w, points), rng.normal(0, 1, points)).astype(np.float32) / 2**octave
    return y + rough * height * 0.08


def _mountains(scene: _Scene, *, low: bool, hills: bool = False) -> None:
    """1-3 ranges, far ones hazier; `hills` draws one low snowless range (a headland seen from a beach)."""
    rng, h, w = scene.rng, scene.h, scene.w
    n_ranges = 1 if hills else int(rng.integers(1, 4))
    rows = np.arange(h, dtype=np.float32)[:, None]
    for i in range(n_ranges):
        far = (n_ranges - 1 - i) / max(1, n_ranges - 1) if n_ranges > 1 else 0.0
        height = h * rng.uniform(0.25, 0.5 if low else 0.6) * (1 - 0.35 * far)
        if hills:
            height = h * rng.uniform(0.05, 0.14)
        ridge = _ridge(rng, w, int(rng.integers(1, 4)), scene.horizon + 2, height)
        y_top = int(max(0, ridge.min()))
        mask = (rows[y_top : scene.horizon + 2] >= ridge[None, :]).astype(np.float32)
        rock = np.array([rng.uniform(0.3, 0.5), rng.uniform(0.3, 0.45), rng.uniform(0.3, 0.5)], np.float32)
        if hills or rng.random() < 0.3:
            rock = np.array([0.25, 0.38, 0.22], np.float32)  # green slopes
        tex = scene.noise(mask.shape[0], w, (8, 40)) * 0.5 + scene.noise(mask.shape[0], w, (4, 6)) * 0.5
        # light from one side: slopes facing it are brighter
        slope = np.gradient(ridge)[None, :] * (1 if rng.random() < 0.5 else -1)
        shade = 0.75 + 0.35 * tex + np.clip(slope, -1, 1) * 0.15
        color = rock[None, None, :] * shade[..., None]
        # snow caps: everything above a jagged snow line
        if not hills and rng.random() < 0.85:
            snow_line = ridge.min() + (scene.horizon - ridge.min()) * rng.uniform(0.25, 0.55)
            jag = (scene.noise(1, w, (1, 25))[0] - 0.5) * height * 0.25
            snow = (rows[y_top : scene.horizon + 2] < (snow_line + jag)[None, :]).astype(np.float32)
            snow_color = np.array([0.93, 0.95, 1.0], np.float32) * (0.85 + 0.2 * tex[..., None])
            color = color * (1 - snow[..., None]) + snow_color * snow[..., None]
        haze = 0.15 + 0.55 * far
        color = color * scene.light * (1 - haze) + scene.horizon_color * haze
        scene.paint(mask, color.astype(np.float32), y_top)


def _ground(scene: _Scene, *, urban: bool) -> None:
    rng, h, w = scene.rng, scene.h, scene.w
    y0 = scene.horizon
    if y0 >= h:
        return
    if urban:
        base = np.array([0.4, 0.4, 0.42], np.float32) + rng.uniform(-0.08, 0.08)
    else:
        choice = rng.random()
        base = np.array([0.3, 0.45, 0.18] if choice < 0.6 else [0.5, 0.45, 0.3] if choice < 0.85 else [0.6, 0.58, 0.45])
    tex = 0.7 * scene.noise(h - y0, w, (6, 12)) + 0.3 * scene.noise(h - y0, w, ((h - y0) // 3, w // 4))
    depth = np.linspace(0.85, 1.1, h - y0, dtype=np.float32)[:, None]
    color = scene.lit(base, 0.05)[None, None, :] * (0.75 + 0.45 * tex * depth)[..., None]
    scene.paint(np.ones((h - y0, w), np.float32), color.astype(np.float32), y0)


def _lake(scene: _Scene) -> None:
    """Still water from the horizon down, mirroring the sky: a mountain lake."""
    rng, w = scene.rng, scene.w
    y0 = scene.horizon
    y1 = int(y0 + (scene.h - y0) * rng.uniform(0.3, 0.7))
    if y1 <= y0:
        return
    water = np.array([0.08, rng.uniform(0.2, 0.35), rng.uniform(0.3, 0.45)], np.float32)
    ripples = scene.noise(y1 - y0, w, (max(2, (y1 - y0) // 3), max(3, w // 50)))
    color = (water * 0.6 + scene.horizon_color * 0.4) * scene.light * (0.85 + 0.3 * ripples)[..., None]
    scene.paint(np.ones((y1 - y0, w), np.float32), color.astype(np.float32), y0)


def _sea(scene: _Scene) -> None:
    rng, h, w = scene.rng, scene.h, scene.w
    y0 = scene.horizon
    shore = h * rng.uniform(0.62, 0.88) + np.sin(np.arange(w) / w * rng.uniform(2, 8) + rng.uniform(0, 6)) * h * 0.03
    scene.shore = shore
    rows = h - y0
    t = np.linspace(0, 1, rows, dtype=np.float32)[:, None, None]
    deep = np.array([0.04, rng.uniform(0.18, 0.3), rng.uniform(0.35, 0.5)], np.float32)
    shallow = np.array([0.1, rng.uniform(0.5, 0.65), rng.uniform(0.55, 0.7)], np.float32)
    color = deep + (shallow - deep) * t
    color = color * 0.8 + scene.horizon_color * 0.2
    # waves: bright horizontal streaks that get larger toward the viewer
    waves = np.zeros((rows, w), np.float32)
    for band_rows in (max(4, rows // 4), max(8, rows // 2)):
        waves += scene.noise(rows, w, (band_rows, max(3, w // 60)))
    crest = np.clip((waves / 2 - 0.62) * 6, 0, 1) * 0.55
    color = color * scene.light * (1 - crest[..., None]) + crest[..., None] * np.float32(0.95) * scene.light
    scene.paint(np.ones((rows, w), np.float32), color.astype(np.float32), y0)


def _sand(scene: _Scene) -> None:
    rng, h, w = scene.rng, scene.h, scene.w
    shore = scene.shore
    assert shore is not None, "the sea layer sets the shore before the sand is drawn"
    y0 = int(max(0, shore.min() - 4))
    rows = np.arange(y0, h, dtype=np.float32)[:, None]
    edge = (rows - shore[None, :]) / 3.0
    mask = np.clip(edge, 0, 1).astype(np.float32)
    foam = np.clip(1 - np.abs(rows - shore[None, :] + 2) / 4.0, 0, 1) * scene.noise(h - y0, w, (3, w // 12))
    sand = np.array([rng.uniform(0.78, 0.92), rng.uniform(0.68, 0.8), rng.uniform(0.48, 0.6)], np.float32)
    dunes = scene.noise(h - y0, w, (3, 5))
    grain = rng.normal(0, 0.035, (h - y0, w)).astype(np.float32)
    color = scene.lit(sand)[None, None, :] * (0.82 + 0.25 * dunes + grain)[..., None]
    scene.paint(mask, color.astype(np.float32), y0)
    scene.paint(np.clip(foam * 1.5, 0, 0.9).astype(np.float32), scene.lit([0.95, 0.97, 1.0]), y0)


def _city(scene: _Scene, *, distant: bool, behind_mountains: bool) -> None:
    rng, h, w = scene.rng, scene.h, scene.w
    night = scene.time == "night"
    if distant:
        baseline, max_height = scene.horizon + 1, h * rng.uniform(0.08, 0.2)
    elif behind_mountains:
        baseline, max_height = int(h * rng.uniform(0.8, 0.95)), h * rng.uniform(0.25, 0.45)
    else:
        baseline, max_height = int(h * rng.uniform(0.78, 1.0)), h * rng.uniform(0.45, 0.8)
    if not distant and baseline < h:
        road = scene.lit([0.22, 0.22, 0.24], 0.04)
        scene.img[baseline:] = road
        lane_y = baseline + (h - baseline) // 2
        dash = (np.arange(w) // max(6, w // 20)) % 2 == 0
        scene.img[lane_y : lane_y + max(1, (h - baseline) // 25), dash] = scene.lit([0.85, 0.8, 0.5])
    for row in range(2 if not distant else 1):
        haze = 0.3 if row == 0 and not distant else 0.0
        scale = 1.0 if row == 0 else 0.65
        x = int(rng.integers(-w // 10, 1))
        while x < w:
            bw = int(w * rng.uniform(0.05, 0.16) * (0.6 if distant else 1.0))
            bh = int(max_height * rng.uniform(0.35, 1.0) * scale)
            gap = int(w * rng.uniform(0.0, 0.03))
            _building(scene, x, baseline - bh, bw, bh, night, haze, fine=distant)
            x += bw + gap


def _building(scene: _Scene, x0: int, y0: int, bw: int, bh: int, night: bool, haze: float, *, fine: bool) -> None:
    rng = scene.rng
    xa, xb, ya, yb = max(0, x0), min(scene.w, x0 + bw), max(0, y0), min(scene.h, y0 + bh)
    if xb <= xa or yb <= ya:
        return
    palette = ([0.55, 0.55, 0.58], [0.7, 0.66, 0.58], [0.45, 0.5, 0.6], [0.62, 0.45, 0.38], [0.8, 0.8, 0.78])
    wall = scene.lit(palette[int(rng.integers(len(palette)))], 0.06)
    block = scene.img[ya:yb, xa:xb]
    side = np.linspace(1.0, rng.uniform(0.7, 1.05), xb - xa, dtype=np.float32)[None, :, None]
    block[:] = wall * side
    # window grid: pitch and size per building, each window lit or dark
    pitch_x = max(3, int(bw / rng.integers(3, 9))) if not fine else max(2, int(bw / rng.integers(3, 6)))
    pitch_y = max(3, int(pitch_x * rng.uniform(0.8, 1.5)))
    win_w, win_h = max(1, int(pitch_x * rng.uniform(0.4, 0.7))), max(1, int(pitch_y * rng.uniform(0.4, 0.7)))
    ly = np.arange(ya - y0, yb - y0)[:, None]
    lx = np.arange(xa - x0, xb - x0)[None, :]
    inside = (ly >= pitch_y // 2) & (lx >= pitch_x // 3) & (lx < bw - pitch_x // 3)
    windows = inside & ((ly % pitch_y) < win_h) & ((lx % pitch_x) < win_w)
    lit_table = rng.random((bh // pitch_y + 2, bw // pitch_x + 2)) < (0.55 if night else 0.0)
    lit = lit_table[ly // pitch_y, lx // pitch_x] & windows
    dark = windows & ~lit
    glass = np.array([0.15, 0.2, 0.3], np.float32) * scene.light + (0.15 if scene.time == "day" else 0.0)
    block[dark] = glass
    block[lit] = np.array([1.0, 0.85, 0.5], np.float32) * rng.uniform(0.75, 1.0)
    if haze:
        block[:] = block * (1 - haze) + scene.horizon_color * haze


def _forest(scene: _Scene, *, role: str) -> None:
    rng, h, w = scene.rng, scene.h, scene.w
    layer = Image.new("RGB", (w, h))
    mask = Image.new("L", (w, h))
    draw_c, draw_m = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    if role == "full":
        count, x_range, y_range, size_range = int(rng.integers(25, 60)), (0.0, 1.0), (scene.horizon, h * 1.15), (0.2, 0.9)
    elif role == "sparse":
        count, x_range, y_range, size_range = int(rng.integers(6, 16)), (0.0, 1.0), (scene.horizon, h * 1.1), (0.25, 0.7)
    elif role == "street":
        count, x_range, y_range, size_range = int(rng.integers(2, 6)), (0.0, 1.0), (h * 0.9, h * 1.05), (0.2, 0.4)
    elif role == "side":
        left = rng.random() < 0.5
        x_range = (-0.05, rng.uniform(0.25, 0.4)) if left else (rng.uniform(0.6, 0.75), 1.05)
        count, y_range, size_range = int(rng.integers(6, 14)), (h * 0.7, h * 1.05), (0.4, 0.9)
    else:
        count, x_range, y_range, size_range = int(rng.integers(10, 22)), (0.0, 1.0), (h * 0.85, h * 1.1), (0.2, 0.45)
    conifer_share = rng.uniform(0.0, 1.0)
    bases = np.sort(rng.uniform(y_range[0], y_range[1], count))  # back to front: farther trees first
    for base in bases:
        depth = (base - y_range[0]) / max(1.0, y_range[1] - y_range[0])
        tree_h = h * (size_range[0] + (size_range[1] - size_range[0]) * depth) * rng.uniform(0.7, 1.1)
        cx = rng.uniform(*x_range) * w
        haze = (1 - depth) * 0.35
        green = np.array([rng.uniform(0.08, 0.3), rng.uniform(0.28, 0.55), rng.uniform(0.08, 0.25)], np.float32)
        if rng.random() < 0.1:
            green = np.array([0.6, 0.45, 0.15], np.float32)  # autumn
        leaf = scene.lit(green) * (1 - haze) + scene.horizon_color * haze
        bark = scene.lit([0.3, 0.2, 0.12]) * (1 - haze) + scene.horizon_color * haze
        fill_leaf, fill_bark = tuple(int(v * 255) for v in np.clip(leaf, 0, 1)), tuple(int(v * 255) for v in np.clip(bark, 0, 1))
        trunk_w = max(1.0, tree_h * 0.05)
        trunk_box = [cx - trunk_w / 2, base - tree_h * 0.35, cx + trunk_w / 2, base]
        draw_c.rectangle(trunk_box, fill=fill_bark)
        draw_m.rectangle(trunk_box, fill=255)
        if rng.random() < conifer_share:
            tiers = int(rng.integers(2, 5))
            for k in range(tiers):
                top = base - tree_h + tree_h * 0.8 * k / tiers
                bottom = base - tree_h * 0.15 - tree_h * 0.7 * (tiers - 1 - k) / tiers * 0.5
                half = tree_h * rng.uniform(0.16, 0.24) * (0.6 + 0.4 * (k + 1) / tiers)
                poly = [(cx, top), (cx - half, bottom), (cx + half, bottom)]
                draw_c.polygon(poly, fill=fill_leaf)
                draw_m.polygon(poly, fill=255)
        else:
            crown_r = tree_h * rng.uniform(0.22, 0.32)
            crown_cy = base - tree_h + crown_r
            for _ in range(int(rng.integers(3, 7))):
                ox, oy = rng.normal(0, crown_r * 0.35, 2)
                r = crown_r * rng.uniform(0.55, 0.85)
                box = [cx + ox - r, crown_cy + oy - r, cx + ox + r, crown_cy + oy + r]
                draw_c.ellipse(box, fill=fill_leaf)
                draw_m.ellipse(box, fill=255)
    m = np.asarray(mask, dtype=np.float32) / 255.0
    rows = np.nonzero(m.any(axis=1))[0]
    if rows.size == 0:
        return
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    color = np.asarray(layer, dtype=np.float32)[y0:y1] / 255.0
    # foliage texture: leaves make high-frequency light and dark speckle
    tex = 0.55 * scene.noise(y1 - y0, w, (max(2, (y1 - y0) // 4), max(2, w // 4))) + 0.45 * scene.noise(
        y1 - y0, w, (max(2, (y1 - y0) // 12), max(2, w // 12))
    )
    color *= (0.6 + 0.8 * tex)[..., None]
    scene.paint(m[y0:y1], color, y0)


def _camera(scene: _Scene) -> Image.Image:
    """What the camera and the photographer add: crop and zoom, mirror, exposure, white balance, noise, blur."""
    rng, img = scene.rng, scene.img
    h, w = img.shape[:2]
    exposure = rng.uniform(0.7, 1.25)
    temperature = rng.uniform(-0.12, 0.12)
    contrast = rng.uniform(0.8, 1.2)
    gain = np.array([1 + temperature, 1.0, 1 - temperature], np.float32) * np.float32(exposure * contrast * 255)
    offset = np.float32((0.5 - 0.5 * contrast) * exposure * 255) * np.array([1 + temperature, 1.0, 1 - temperature], np.float32)
    img *= gain
    img += offset
    sigma = rng.uniform(0.0, 0.04)
    if sigma > 0.005:
        # luminance grain (uniform, same variance as Gaussian): a third of the cost of per-channel normal noise
        grain = rng.random(img.shape[:2], dtype=np.float32)
        grain -= np.float32(0.5)
        grain *= np.float32(sigma * 255 * np.sqrt(12))
        img += grain[..., None]
    np.clip(img, 0, 255, out=img)
    pil = Image.fromarray(img.astype(np.uint8), "RGB")
    if rng.random() < 0.5:
        pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    zoom = rng.uniform(0.75, 1.0)
    if zoom < 0.97 and min(w, h) >= 32:
        cw, ch = int(w * zoom), int(h * zoom)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        pil = pil.resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.3:
        pil = pil.filter(ImageFilter.BoxBlur(rng.uniform(0.6, 1.6)))  # one box pass: a third of GaussianBlur's cost
    return pil


__all__ = [
    "CLASSES",
    "MULTILABEL_COMBOS",
    "SceneImage",
    "camera_shot",
    "dataset",
    "generate",
    "normalize_labels",
    "oversized_png",
    "render",
    "text_file",
    "tiny_image",
    "truncated_jpeg",
]

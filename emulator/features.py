"""What the local service learns from: a fixed-length vector of hand-made features computed from an image's pixels.

Azure Custom Vision fine-tunes a pretrained network; no pretrained weights can be downloaded here, so the local
service describes an image with classic features that capture what tells scenes apart:

- ``color``: a joint hue x saturation x value histogram (sand is yellow, foliage green, sea and sky blue);
- ``layout``: the mean and spread of colour in a 4x4 grid (sky on top, sea in the middle, sand at the bottom);
- ``edges``: gradient-orientation histograms (HOG-like) globally and per quadrant, and gradient energy in a 4x4 grid
  (buildings are vertical and horizontal lines, mountains diagonal, waves horizontal);
- ``texture``: rotation-invariant local binary patterns (leaves are speckled, walls and sky flat), per image half,
  and gradient energy at three scales.

Every image is first decoded the way the service accepts it (EXIF orientation applied, first frame of an animation,
palette / CMYK / grey / 16-bit / alpha converted to RGB) and squashed to 128x128, so the cost is the same for every
upload (a few milliseconds) and the layout cells line up across aspect ratios.

Change anything that alters the numbers and bump ``FEATURE_VERSION``: stored models record the version they were
trained on, and features of another version must not be fed to them.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FEATURE_VERSION = "cvops-scene-features-1"

SIDE = 128  # pixels per side of the working copy
_GRID = 4  # layout and gradient-energy cells per side
_HUE_BINS, _SAT_BINS, _VAL_BINS = 8, 3, 3
_ORIENTATION_BINS = 9
_LBP_BINS = 10  # riu2 patterns for 8 neighbours: 0..8 "uniform" ones-counts + 1 for everything else

_GROUP_SIZES = {
    "color": _HUE_BINS * _SAT_BINS * _VAL_BINS,
    "layout": _GRID * _GRID * 8,  # R, G, B, S, V means + R, G, B standard deviations
    "edges": _ORIENTATION_BINS * 5 + _GRID * _GRID,
    "texture": _LBP_BINS * 3 + 3,
}


def _group_slices() -> dict[str, slice]:
    out, start = {}, 0
    for name, size in _GROUP_SIZES.items():
        out[name] = slice(start, start + size)
        start += size
    return out


FEATURE_GROUPS: dict[str, slice] = _group_slices()
"""Where each family of features sits in the vector (the classifier's Advanced search tries subsets of them)."""

FEATURE_DIM = sum(_GROUP_SIZES.values())


DECODE_SIZE = (SIDE * 2, SIDE * 2)
"""The smallest decoded size the features need: a JPEG may decode at a reduced scale down to it (several times
faster). The service's image checks decode with it too, so one decode serves both (`emulator.images.decode_image`)."""


def extract_features(image_bytes: bytes, *, mirror: bool = False) -> np.ndarray:
    """The 1-D float32 feature vector of an encoded image (JPEG, PNG, BMP, GIF...), of length FEATURE_DIM.

    `mirror` flips the image left-right first: a mirrored scene is as valid an example as the original, so the
    classifier can use it to augment a small training set. Raises ValueError when the bytes are not a decodable image.
    """
    rgb = load_rgb(image_bytes)
    if mirror:
        rgb = rgb[:, ::-1]
    return features_of_pixels(rgb)


def features_of_image(image: Image.Image, *, mirror: bool = False) -> np.ndarray:
    """`extract_features` of an image already decoded (first frame loaded; a JPEG drafted to DECODE_SIZE or larger).

    The same numbers as `extract_features` of its bytes: what lets the service check an upload or a prediction and
    describe it from one decode.
    """
    rgb = rgb_of_image(image)
    if mirror:
        rgb = rgb[:, ::-1]
    return features_of_pixels(rgb)


def load_rgb(image_bytes: bytes, side: int = SIDE) -> np.ndarray:
    """Decode to an upright RGB uint8 array of shape (side, side, 3); ValueError if the bytes are not an image."""
    if not isinstance(image_bytes, bytes | bytearray | memoryview):
        raise TypeError(f"image bytes expected, got {type(image_bytes).__name__}")
    if len(image_bytes) == 0:
        raise ValueError("cannot read image: the data is empty (0 bytes); upload a JPEG, PNG, BMP or GIF file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(bytes(image_bytes)))
            fmt = img.format or "unknown"
            if fmt == "JPEG":
                img.draft("RGB", (side * 2, side * 2))  # decode at a reduced scale: several times faster
            img.seek(0)  # animated GIF / APNG: the first frame, as Custom Vision uses
            img.load()
    except UnidentifiedImageError as exc:
        raise ValueError(
            f"cannot read image: the data ({len(image_bytes)} bytes) is not a format Pillow recognises; "
            "upload a JPEG, PNG, BMP or GIF file"
        ) from exc
    except (OSError, SyntaxError, Image.DecompressionBombError, EOFError) as exc:
        raise ValueError(
            f"cannot read image: the data ({len(image_bytes)} bytes) is damaged or truncated ({exc}); "
            "re-export or re-upload the file"
        ) from exc
    return rgb_of_image(img, side)


def rgb_of_image(image: Image.Image, side: int = SIDE) -> np.ndarray:
    """A decoded image as an upright RGB uint8 array of shape (side, side, 3)."""
    img = _upright(image)
    img = _to_rgb(img)
    img = img.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(img, dtype=np.uint8)


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phones store portraits sideways with a rotate flag); ignore a broken EXIF block."""
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB from any mode: high bit depths scaled to 8 bits, transparency flattened on white (as viewers show it)."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        values = np.asarray(img, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") else float(values.max())
        low = 0.0 if mode.startswith("I;16") else min(0.0, float(values.min()))
        scaled = (values - low) / max(top - low, 1e-6) * 255.0
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return img.convert("RGB")
    return img


def features_of_pixels(rgb: np.ndarray) -> np.ndarray:
    """Features of an RGB uint8 array (any size; 128x128 from `load_rgb` is what the service uses)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < _GRID * 2 or rgb.shape[1] < _GRID * 2:
        raise ValueError(f"expected an RGB array of shape (H, W, 3) with H, W >= {_GRID * 2}, got {rgb.shape}")
    rgb = np.ascontiguousarray(rgb)
    hsv = np.asarray(Image.fromarray(rgb, "RGB").convert("HSV"))
    rgbf = rgb.astype(np.float32) / 255.0
    hsvf = hsv.astype(np.float32) / 255.0
    gray = rgbf @ np.array([0.299, 0.587, 0.114], np.float32)
    parts = [
        _color_histogram(hsv),
        _layout(rgbf, hsvf),
        _edges(gray),
        _texture(gray),
    ]
    out = np.concatenate(parts).astype(np.float32)
    assert out.shape == (FEATURE_DIM,), (out.shape, FEATURE_DIM)
    return out


def _color_histogram(hsv: np.ndarray) -> np.ndarray:
    h = hsv[..., 0].astype(np.int32) * _HUE_BINS // 256
    s = hsv[..., 1].astype(np.int32) * _SAT_BINS // 256
    v = hsv[..., 2].astype(np.int32) * _VAL_BINS // 256
    index = (h * _SAT_BINS + s) * _VAL_BINS + v
    counts = np.bincount(index.ravel(), minlength=_HUE_BINS * _SAT_BINS * _VAL_BINS).astype(np.float32)
    # square root: a bin holding 1% of the pixels still matters next to one holding 60% (Hellinger normalisation)
    return np.sqrt(counts / counts.sum())


def _cells(a: np.ndarray, grid: int) -> np.ndarray:
    """(grid, grid, ch, cell_pixels) view of an (H, W, ch) array cropped to a multiple of grid."""
    h, w = a.shape[0] // grid * grid, a.shape[1] // grid * grid
    a = a[:h, :w]
    if a.ndim == 2:
        a = a[..., None]
    ch = a.shape[2]
    return a.reshape(grid, h // grid, grid, w // grid, ch).transpose(0, 2, 4, 1, 3).reshape(grid, grid, ch, -1)


def _layout(rgbf: np.ndarray, hsvf: np.ndarray) -> np.ndarray:
    rgb_cells = _cells(rgbf, _GRID)
    sv_cells = _cells(hsvf[..., 1:], _GRID)
    means = np.concatenate([rgb_cells.mean(axis=3), sv_cells.mean(axis=3)], axis=2)
    stds = rgb_cells.std(axis=3)
    return np.concatenate([means, stds], axis=2).ravel()


def _gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient magnitude and unsigned orientation (0..pi) of the interior pixels."""
    gx = gray[1:-1, 2:] - gray[1:-1, :-2]
    gy = gray[2:, 1:-1] - gray[:-2, 1:-1]
    magnitude = np.sqrt(gx * gx + gy * gy)
    orientation = np.arctan2(gy, gx) % np.pi
    return magnitude, orientation


def _edges(gray: np.ndarray) -> np.ndarray:
    magnitude, orientation = _gradients(gray)
    bins = np.minimum((orientation / np.pi * _ORIENTATION_BINS).astype(np.int32), _ORIENTATION_BINS - 1)
    h, w = magnitude.shape
    regions = [(slice(None), slice(None))] + [
        (slice(r * h // 2, (r + 1) * h // 2), slice(c * w // 2, (c + 1) * w // 2)) for r in range(2) for c in range(2)
    ]
    histograms = []
    for rows, cols in regions:
        hist = np.bincount(bins[rows, cols].ravel(), weights=magnitude[rows, cols].ravel(), minlength=_ORIENTATION_BINS)
        histograms.append(hist / (hist.sum() + 1e-6))  # shape of the edges, independent of their strength
    energy = _cells(magnitude, _GRID).mean(axis=3).ravel()
    return np.concatenate([*histograms, np.sqrt(energy)])


def _lbp_riu2(gray: np.ndarray) -> np.ndarray:
    """Rotation-invariant uniform LBP code (0..9) of each interior pixel, 8 neighbours at radius 1."""
    center = gray[1:-1, 1:-1]
    h, w = gray.shape
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]  # a closed ring, in order
    bits = np.stack([gray[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] >= center + 0.01 for dy, dx in offsets])
    ones = bits.sum(axis=0)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(axis=0)
    return np.where(transitions <= 2, ones, _LBP_BINS - 1)


def _texture(gray: np.ndarray) -> np.ndarray:
    codes = _lbp_riu2(gray)
    half = codes.shape[0] // 2
    histograms = []
    for part in (codes, codes[:half], codes[half:]):
        counts = np.bincount(part.ravel(), minlength=_LBP_BINS).astype(np.float32)
        histograms.append(np.sqrt(counts / counts.sum()))
    # fine vs coarse texture: gradient energy after 2x and 4x downsampling (leaves lose it, buildings keep it)
    scales = []
    g = gray
    for _ in range(3):
        magnitude, _orientation = _gradients(g)
        scales.append(np.sqrt(magnitude.mean()))
        h, w = g.shape[0] // 2 * 2, g.shape[1] // 2 * 2
        g = g[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return np.concatenate([*histograms, np.asarray(scales, np.float32)])


__all__ = [
    "DECODE_SIZE", "FEATURE_DIM", "FEATURE_GROUPS", "FEATURE_VERSION", "extract_features", "features_of_image",
    "features_of_pixels", "load_rgb", "rgb_of_image",
]

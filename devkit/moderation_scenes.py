"""Images that land in each moderation band of the seed policy (pass, review, reject), deterministically.

What the local service's moderation stand-in measures is colour area (``emulator/moderation_detector.py``: the largest
skin-coloured region for adult/racy and Content Safety's Sexual, the blood-red share for gore and Violence). So these
images are a dev kit scene with a shape of that colour painted over a chosen share of it: nothing in them is a body or
an injury, and no real moderation model would flag them. They exist so that tests and the demo can send an image that
the stand-in puts in a known band, and watch the app route it.

Shares are chosen mid-band for the seed policy (``policy.yaml``: adult/gore review from 0.4, reject above 0.7; racy
review from 0.6) and for its Content Safety bands (Sexual/Violence review from 2, reject from 4): a pass image has no
shape at all, a review image scores about 0.55, a reject image about 0.95. The base scene is ``forest`` seed 0, whose
own pixels measure almost no skin colour (0.7% of the image) and no blood red (docs/local-service.md has the measures).
Pure functions of their arguments: the same call gives the same bytes.
"""

from __future__ import annotations

import io
import math
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from devkit import scenes

Band = Literal["pass", "review", "reject"]
Kind = Literal["adult", "gore"]
BANDS: tuple[Band, ...] = ("pass", "review", "reject")

BASE_SCENE = ("forest", 0)
"""The scene the shapes are painted on (measured clean: see the module docstring)."""

# Share of the image the shape covers, per kind and band (the stand-in's curves put these mid-band).
SHARES: dict[Kind, dict[Band, float]] = {
    "adult": {"pass": 0.0, "review": 0.465, "reject": 0.62},
    "gore": {"pass": 0.0, "review": 0.13, "reject": 0.25},
}
SKIN = (214, 160, 128)
BLOOD = (150, 12, 16)


def render(kind: Kind, band: Band, *, size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    """The base scene with a ``kind``-coloured ellipse over the band's share of it (no shape for ``pass``).

    ``seed`` moves the ellipse's centre a little, so several images of one band are not byte-identical."""
    if kind not in SHARES:
        raise ValueError(f"kind must be one of {sorted(SHARES)}, not {kind!r}")
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, not {band!r}")
    image = scenes.render(BASE_SCENE[0], BASE_SCENE[1], size=size).convert("RGB")
    share = SHARES[kind][band]
    if share <= 0:
        return image
    w, h = image.size
    # An ellipse of the image's aspect covering `share` of it: pi * a * b = share * w * h, with a/b = w/h.
    scale = math.sqrt(share * 4 / math.pi)
    a, b = scale * w / 2, scale * h / 2
    rng = np.random.default_rng(seed)
    cx = w / 2 + float(rng.uniform(-0.05, 0.05)) * w
    cy = h / 2 + float(rng.uniform(-0.05, 0.05)) * h
    shape = Image.new("L", image.size, 0)
    ImageDraw.Draw(shape).ellipse((cx - a, cy - b, cx + a, cy + b), fill=255)
    colour = SKIN if kind == "adult" else BLOOD
    # A little shading so the shape is not one flat colour; it stays inside the colour cluster the stand-in measures.
    shade = rng.normal(0, 4, (h, w, 1))
    painted = np.clip(np.array(colour, dtype=np.float32)[None, None, :] + shade, 0, 255).astype(np.uint8)
    image.paste(Image.fromarray(painted, "RGB"), (0, 0), shape)
    return image


def generate(kind: Kind, band: Band, *, size: tuple[int, int] = (320, 240), seed: int = 0,
             fmt: str = "JPEG") -> bytes:
    """:func:`render`, encoded (JPEG quality 92, or PNG)."""
    out = io.BytesIO()
    image = render(kind, band, size=size, seed=seed)
    if fmt == "JPEG":
        image.save(out, format="JPEG", quality=92)
    else:
        image.save(out, format=fmt)
    return out.getvalue()


SYMBOL_YELLOW = (236, 200, 28)
SYMBOL_BLACK = (18, 18, 18)


def banned_symbol(label: str, seed: int, *, size: tuple[int, int] = (320, 240), fmt: str = "JPEG") -> bytes:
    """A dev kit scene with a made-up "banned symbol" painted on it: a yellow disc, a thick black ring and a black bar
    across it, at a seeded place and size (a quarter to a third of the short side as radius). The symbol means nothing;
    it is what the demo's ``uploads`` classifier learns to find, as a platform trains one for a real symbol. Its colours
    stay outside the moderation stand-in's skin and blood-red clusters, so it scores nothing there."""
    image = scenes.render(label, seed, size=size).convert("RGB")
    w, h = image.size
    rng = np.random.default_rng(10_000 + seed)
    radius = float(rng.uniform(0.25, 0.33)) * min(w, h)
    cx = float(rng.uniform(radius, w - radius))
    cy = float(rng.uniform(radius, h - radius))
    draw = ImageDraw.Draw(image)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    draw.ellipse(box, fill=SYMBOL_YELLOW, outline=SYMBOL_BLACK, width=max(3, int(radius * 0.18)))
    bar = radius * 0.62
    draw.line((cx - bar, cy + bar, cx + bar, cy - bar), fill=SYMBOL_BLACK, width=max(3, int(radius * 0.2)))
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return out.getvalue()


__all__ = ["BANDS", "BASE_SCENE", "SHARES", "Band", "Kind", "banned_symbol", "generate", "measure_table", "render"]


def measure_table(seeds: int = 25) -> list[str]:
    """How the local service's stand-in scores the dev kit's images: per scene class (``seeds`` images each, 256x192
    JPEG) and per band renderer, the mean measures and how many images land in each seed-policy band. Printed by
    ``python -m devkit.moderation_scenes``; docs/local-service.md quotes it."""
    from emulator.moderation_detector import analyse  # the dev kit may import the local service; the app never does

    def band(score: float, review_from: float, reject_above: float | None) -> str:
        if reject_above is not None and score > reject_above:
            return "reject"
        return "review" if score >= review_from else "pass"

    rows = ["| images | n | skin region (mean) | blood red (mean) | adult pass/review/reject | racy review | "
            "gore pass/review/reject | Sexual 0/2/4/6 | Violence 0/2/4/6 |", "|---|---|---|---|---|---|---|---|---|"]
    groups: list[tuple[str, list[bytes]]] = [
        (label, [scenes.generate(label, seed, size=(256, 192)) for seed in range(seeds)]) for label in scenes.CLASSES]
    groups += [(f"{kind} {b} (this module)", [generate(kind, b, seed=seed) for seed in range(5)])
               for kind in ("adult", "gore") for b in BANDS]
    for name, images in groups:
        results = [analyse(Image.open(io.BytesIO(data))) for data in images]
        adult = [band(r.adult_score, 0.4, 0.7) for r in results]
        gore = [band(r.gore_score, 0.4, 0.7) for r in results]
        sexual = [r.severities["Sexual"] for r in results]
        violence = [r.severities["Violence"] for r in results]
        rows.append(
            f"| {name} | {len(results)} | {sum(r.measures.largest_skin_region for r in results) / len(results):.3f} | "
            f"{sum(r.measures.blood for r in results) / len(results):.3f} | "
            f"{'/'.join(str(adult.count(b)) for b in BANDS)} | {sum(r.racy_score >= 0.6 for r in results)} | "
            f"{'/'.join(str(gore.count(b)) for b in BANDS)} | {'/'.join(str(sexual.count(s)) for s in (0, 2, 4, 6))} | "
            f"{'/'.join(str(violence.count(s)) for s in (0, 2, 4, 6))} |")
    return rows


if __name__ == "__main__":
    print("\n".join(measure_table()))

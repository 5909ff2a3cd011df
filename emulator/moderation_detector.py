"""The stand-in moderation model behind the local Computer Vision `analyze` (Adult) and Content Safety `image:analyze`.

**A stand-in for exercising the path, not a moderation model.** It measures two plain colour properties of the pixels
and nothing else; it knows nothing of people, bodies, weapons or symbols. Its only job is that the scores and severities
the local service answers *come from the image* (a different image gives a different answer, the same image the same
one), so the Function App's moderation path, its policy bands and the review flow can be exercised end to end and
deterministically with images the dev kit renders (`devkit.moderation_scenes`). Its measured behaviour on the dev kit's
images is in docs/local-service.md.

What it measures, on the first frame shrunk to at most :data:`ANALYSIS_SIDE` px:

* **skin-coloured area**: pixels inside the classic YCbCr skin cluster (Chai and Ngan, "Face segmentation using
  skin-color map in videophone applications", IEEE TCSVT 1999: Cb 77-127, Cr 133-173), brighter than Y 40. Region
  geometry: the share of the image covered by the *largest connected* skin region (8-connectivity), so scattered
  skin-coloured specks (sand grains, brick) count for less than one large region.
* **blood-red area**: saturated dark-to-mid reds (Cr above the skin cluster, above 175; R at least 2.2 times G and
  B; R from 90), the share of the whole image.

How they become answers (:func:`analyse`):

* Computer Vision 3.2 ``adultScore`` and ``racyScore`` are logistic curves of the skin region's share (racy rises
  first: at 30% of the image it is 0.5, adult at 45%); ``goreScore`` is a logistic curve of the blood-red share (0.5 at
  12%). ``isAdultContent``/``isRacyContent``/``isGoryContent`` are score > 0.5 (Azure's own cut-off is not published).
* Content Safety ``Sexual`` is the adult score, ``Violence`` the gore score, each cut into the image scale's four
  severities 0, 2, 4, 6 at 0.4, 0.7 and 0.9 (:data:`SEVERITY_CUTS`). ``Hate`` and ``SelfHarm`` are **always 0**:
  colour says nothing about either, and inventing a signal would only mislead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

ANALYSIS_SIDE = 128
"""Longest side the pixels are measured at: enough for area shares, and a few milliseconds per image."""

SKIN_CB = (77, 127)
SKIN_CR = (133, 173)
SKIN_MIN_Y = 40
BLOOD_MIN_CR = 175
BLOOD_MIN_R = 90
BLOOD_RATIO = 2.2

# Logistic curves: (share at which the score is 0.5, width). A width of 0.05 turns 0.5 into ~0.88 one width further.
ADULT_CURVE = (0.45, 0.05)
RACY_CURVE = (0.30, 0.05)
GORE_CURVE = (0.12, 0.03)

SEVERITY_CUTS = (0.4, 0.7, 0.9)
"""Score at which the severity becomes 2, 4 and 6 (Content Safety's image scale has only 0, 2, 4, 6). Cut where the
seed policy's 0-1 bands are (review from 0.4, reject above 0.7), so an image the dev kit renders for a band lands in the
same band under either API. Azure publishes no mapping between the two scales; this one is the stand-in's choice."""

CATEGORIES = ("Hate", "SelfHarm", "Sexual", "Violence")
"""Content Safety's image categories, in the spec's order."""


@dataclass(frozen=True)
class Measures:
    """What the detector measured: shares of the analysed image, from 0 to 1."""

    skin: float
    largest_skin_region: float
    blood: float


@dataclass(frozen=True)
class Analysis:
    """The measures and what both APIs answer for them."""

    measures: Measures
    adult_score: float
    racy_score: float
    gore_score: float

    @property
    def severities(self) -> dict[str, int]:
        """Content Safety severities by category (0, 2, 4, 6)."""
        return {"Hate": 0, "SelfHarm": 0, "Sexual": severity(self.adult_score), "Violence": severity(self.gore_score)}

    def adult_info(self) -> dict[str, object]:
        """Computer Vision 3.2's ``AdultInfo``."""
        return {"isAdultContent": self.adult_score > 0.5, "isRacyContent": self.racy_score > 0.5,
                "isGoryContent": self.gore_score > 0.5, "adultScore": self.adult_score,
                "racyScore": self.racy_score, "goreScore": self.gore_score}


def _logistic(share: float, curve: tuple[float, float]) -> float:
    middle, width = curve
    return round(1.0 / (1.0 + math.exp(-(share - middle) / width)), 6)


def severity(score: float) -> int:
    """A 0-1 score cut into Content Safety's four image severities."""
    return 2 * sum(score >= cut for cut in SEVERITY_CUTS)


def _rgb(image: Image.Image) -> np.ndarray:
    """The first frame, RGB, at most ANALYSIS_SIDE px on its longest side (a JPEG decodes at a reduced scale)."""
    if image.format == "JPEG":
        image.draft("RGB", (ANALYSIS_SIDE, ANALYSIS_SIDE))
    frame = image.convert("RGB")  # palette, alpha, 16-bit and CMYK frames alike
    frame.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(frame, dtype=np.float32)


def measure(image: Image.Image) -> Measures:
    """Skin-coloured and blood-red shares of the image (see the module docstring)."""
    rgb = _rgb(image)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # ITU-R BT.601 full range, as JPEG stores it.
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    skin = ((cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1]) & (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1]) & (y > SKIN_MIN_Y))
    blood = (cr > BLOOD_MIN_CR) & (r >= BLOOD_MIN_R) & (r >= BLOOD_RATIO * g) & (r >= BLOOD_RATIO * b)
    area = float(skin.size)
    labels, count = ndimage.label(skin, structure=np.ones((3, 3), dtype=bool))
    largest = float(np.bincount(labels.ravel())[1:].max()) if count else 0.0
    return Measures(skin=round(float(skin.sum()) / area, 6), largest_skin_region=round(largest / area, 6),
                    blood=round(float(blood.sum()) / area, 6))


def analyse(image: Image.Image) -> Analysis:
    """Scores for a decoded image (any mode; only the first frame is read, as Content Safety reads animations)."""
    measures = measure(image)
    return Analysis(measures=measures,
                    adult_score=_logistic(measures.largest_skin_region, ADULT_CURVE),
                    racy_score=_logistic(measures.largest_skin_region, RACY_CURVE),
                    gore_score=_logistic(measures.blood, GORE_CURVE))


__all__ = ["ANALYSIS_SIDE", "CATEGORIES", "SEVERITY_CUTS", "Analysis", "Measures", "analyse", "measure", "severity"]

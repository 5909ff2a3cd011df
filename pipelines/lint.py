"""Dataset lint: catch what Custom Vision would reject, or train badly on, before anything is uploaded.

An upload of thousands of images that fails image by image (``ErrorImageFormat``, ``ErrorImageSize``...) or trains a
useless model (three images of one tag, two hundred of another) costs time and quota. :func:`lint` finds those
problems on plain data (:class:`ImageInfo`), so it runs the same on local files, blobs or a test's generated images;
:func:`inspect_image` is the only part that looks at bytes.

The limits are the service's (Microsoft Learn, "Limits and quotas"; the numbers are :mod:`cvops.limits`'s): JPEG/PNG/
BMP/GIF only, at most 6 MB per training image (taken as 6 MiB, the way Azure AI services count), longest side at most
10,240 px, aspect ratio at most 25:1, at most 100 tags per image, one tag per image in a Multiclass project, at least 5
images per tag to train (50+ recommended). Two are this project's policy, both adjustable:

* shortest side under 256 px is a warning (the service upscales it, so it trains on blur), under 32 px an error:
  such files are icons, thumbnails or tracking pixels far more often than training data;
* exact duplicates (same SHA-256) with the same tags are a warning (the service stores the bytes once, as
  ``OKDuplicate``), with different tags an error: the service keeps one copy and one set of tags, so a label is lost.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from cvops import limits

__all__ = [
    "SUPPORTED_FORMATS",
    "Finding",
    "ImageInfo",
    "has_errors",
    "inspect_image",
    "lint",
]

SUPPORTED_FORMATS = limits.ACCEPTED_FORMATS
# Pillow names some camera JPEGs (with a second, multi-picture frame) MPO; the file is still a JPEG.
_FORMAT_ALIASES = {"MPO": "JPEG"}
MAX_TRAINING_BYTES = limits.MAX_TRAINING_BYTES
MAX_SIDE = limits.MAX_SIDE
MAX_ASPECT = limits.MAX_ASPECT_RATIO
MAX_TAGS_PER_IMAGE = limits.MAX_TAGS_PER_IMAGE
SMALL_SIDE_WARNING = limits.UPSCALED_BELOW_SIDE
SMALL_SIDE_ERROR = 32  # this project's policy: icons and tracking pixels, not training data
CLASSIFICATION_TYPES = ("Multiclass", "Multilabel")
_BOMB = "too many pixels to decode safely"

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class ImageInfo:
    """What lint needs to know about one image. ``format`` is Pillow's name (JPEG, PNG...), ``error`` why it could
    not be read (then format and size may be None)."""

    path: str
    tags: tuple[str, ...]
    size_bytes: int
    format: str | None
    width: int | None
    height: int | None
    sha256: str
    error: str | None = None

    def __post_init__(self) -> None:
        # Accept any iterable of tags but store an immutable tuple, so infos can be hashed and shared.
        object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True)
class Finding:
    """One problem. ``path`` is set for an image's problem, ``tag`` for a tag's; ``message`` says what to do."""

    severity: Severity
    code: str
    message: str
    path: str | None = None
    tag: str | None = None
    related: tuple[str, ...] = field(default=())

    @property
    def subject(self) -> str:
        """What the finding is about, for one-line output: the image path, the tag, or the dataset."""
        if self.path is not None:
            return self.path
        if self.tag is not None:
            return f"tag {self.tag!r}"
        return "dataset"

    def __str__(self) -> str:
        return f"{self.severity}: {self.subject}: {self.message} [{self.code}]"


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding would make the upload or training fail."""
    return any(f.severity == "error" for f in findings)


def condense(findings: Iterable[Finding], *, per_code: int = 5) -> tuple[list[Finding], dict[str, int]]:
    """The findings a person should read, and how many of each code were left out.

    Every error is kept (each one blocks an upload and must be fixed); warnings of one code are cut after `per_code`,
    because two hundred "shortest side under 256 px" rows hide the one warning that matters. `--json` still lists all.
    """
    shown: list[Finding] = []
    hidden: dict[str, int] = {}
    seen: dict[str, int] = {}
    for finding in findings:
        seen[finding.code] = seen.get(finding.code, 0) + 1
        if finding.severity == "error" or seen[finding.code] <= per_code:
            shown.append(finding)
        else:
            hidden[finding.code] = hidden.get(finding.code, 0) + 1
    return shown, hidden


def inspect_image(path: str, data: bytes, tags: list[str]) -> ImageInfo:
    """Read format and size from the bytes' header and check the file decodes, without a full decode when possible.

    JPEG is decoded in Pillow's draft mode (at 1/8 scale, a fraction of the cost), which still reaches the end of the
    data and so catches truncated files; other formats go through ``verify()``, which checks structure and
    checksums without decoding pixels.
    """
    digest = hashlib.sha256(data).hexdigest()
    fmt = width = height = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = _FORMAT_ALIASES.get(image.format or "", image.format)
                width, height = image.size
                if fmt == "JPEG":
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()
                else:
                    image.verify()
    except Image.UnidentifiedImageError:
        return ImageInfo(path, tags, len(data), None, None, None, digest, "not a recognised image format")
    except Image.DecompressionBombError as exc:
        return ImageInfo(path, tags, len(data), fmt, width, height, digest, f"{_BOMB} ({exc})")
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...) for bad files
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return ImageInfo(path, tags, len(data), fmt, width, height, digest, reason)
    return ImageInfo(path, tags, len(data), fmt, width, height, digest)


def _image_findings(info: ImageInfo, classification_type: str) -> list[Finding]:
    """Problems of one image on its own (not counting duplicates and tags)."""
    out: list[Finding] = []

    def add(severity: Severity, code: str, message: str) -> None:
        out.append(Finding(severity, code, message, path=info.path))

    if info.size_bytes > MAX_TRAINING_BYTES:
        add("error", "file-too-large",
            f"{info.size_bytes / 2**20:.1f} MB is over the {MAX_TRAINING_BYTES // 2**20} MB training limit; "
            "re-encode it (e.g. JPEG quality 90) or scale it down")
    if info.error is not None:
        if info.error.startswith(_BOMB):
            add("error", "dimensions-too-large",
                f"the image has {_BOMB}; scale it down to at most {MAX_SIDE:,} px on the longest side")
        else:
            add("error", "undecodable", f"the file is not a readable image ({info.error}); re-export it or remove it")
    elif info.format not in SUPPORTED_FORMATS:
        add("error", "unsupported-format",
            f"format {info.format or 'unknown'} is not accepted (only JPEG, PNG, BMP, GIF); convert it to JPEG or PNG")
    if info.width and info.height:
        longest, shortest = max(info.width, info.height), min(info.width, info.height)
        size = f"{info.width}x{info.height}"
        if longest > MAX_SIDE:
            add("error", "dimensions-too-large",
                f"{size} px: the longest side is over {MAX_SIDE:,} px; scale it down")
        if longest / shortest > MAX_ASPECT:
            add("error", "aspect-ratio",
                f"{size} px: aspect ratio {longest / shortest:.0f}:1 is over {MAX_ASPECT:.0f}:1; crop it")
        if shortest < SMALL_SIDE_ERROR:
            add("error", "too-small",
                f"{size} px: the shortest side is under {SMALL_SIDE_ERROR} px, too little to learn from; "
                "use the original image or remove it")
        elif shortest < SMALL_SIDE_WARNING:
            add("warning", "small",
                f"{size} px: the shortest side is under {SMALL_SIDE_WARNING} px and the service will upscale it; "
                "use a larger original if there is one")
    if not info.tags:
        add("warning", "untagged", "the image has no tag, so it will not be used for training; tag it or remove it")
    elif len(info.tags) > MAX_TAGS_PER_IMAGE:
        add("error", "too-many-tags", f"{len(info.tags)} tags; an image may have at most {MAX_TAGS_PER_IMAGE}")
    if classification_type == "Multiclass" and len(set(info.tags)) > 1:
        add("error", "multiclass-several-tags",
            f"tags {sorted(set(info.tags))}: a Multiclass project allows one tag per image; keep one, or make the "
            "project Multilabel")
    return out


def _duplicate_findings(images: list[ImageInfo]) -> list[Finding]:
    """Exact duplicates, each reported on the later path(s) and naming the first."""
    first: dict[str, ImageInfo] = {}
    out: list[Finding] = []
    for info in images:
        original = first.setdefault(info.sha256, info)
        if original is info:
            continue
        if set(original.tags) == set(info.tags):
            out.append(Finding(
                "warning", "duplicate",
                f"same bytes as {original.path} with the same tags; the service stores it once, remove one",
                path=info.path, related=(original.path,)))
        else:
            out.append(Finding(
                "error", "duplicate-conflicting-tags",
                f"same bytes as {original.path} but tagged {sorted(info.tags)} instead of {sorted(original.tags)}; "
                "the service keeps one copy with one set of tags, so fix the labels and keep one file",
                path=info.path, related=(original.path,)))
    return out


def _tag_findings(counts: Counter[str], seen: set[str], *, min_per_tag: int, recommended_per_tag: int, imbalance_ratio: float,
                  expected_tags: list[str] | None) -> list[Finding]:
    out: list[Finding] = []
    tags = list(expected_tags) if expected_tags is not None else sorted(seen)
    if expected_tags is not None:
        for tag in sorted(seen - set(expected_tags)):
            out.append(Finding("error", "unknown-tag",
                               f"image(s) use tag {tag!r}, which the project spec does not declare; "
                               "add it to the spec or fix the images' tags", tag=tag))
    for tag in tags:
        n = counts.get(tag, 0)
        if n < min_per_tag:
            out.append(Finding("error", "too-few-images",
                               f"{n} usable image(s); training needs at least {min_per_tag} per tag, add more",
                               tag=tag))
        elif n < recommended_per_tag:
            out.append(Finding("warning", "few-images",
                               f"{n} usable images; {recommended_per_tag}+ per tag are recommended for a good model",
                               tag=tag))
    present = {t: counts.get(t, 0) for t in tags if counts.get(t, 0) > 0}
    if len(present) >= 2:
        largest = max(present, key=lambda t: (present[t], t))
        smallest = min(present, key=lambda t: (present[t], t))
        ratio = present[largest] / present[smallest]
        if ratio > imbalance_ratio:
            out.append(Finding(
                "warning", "imbalance",
                f"tag {largest!r} has {present[largest]} images and {smallest!r} only {present[smallest]} "
                f"({ratio:.1f}:1, over {imbalance_ratio:g}:1); the model will favour the larger tag: add images of "
                f"{smallest!r}, oversample or augment them, or use fewer of {largest!r}",
                tag=smallest))
    return out


def lint(
    images: list[ImageInfo],
    *,
    classification_type: str,
    min_per_tag: int = limits.MIN_IMAGES_PER_TAG,
    recommended_per_tag: int = limits.RECOMMENDED_IMAGES_PER_TAG,
    imbalance_ratio: float = 2.0,
    expected_tags: list[str] | None = None,
) -> list[Finding]:
    """All findings for a dataset, errors first, then by path/tag.

    Tag counts include only usable images (those with no error of their own), because only those will train.
    ``expected_tags`` (the project spec's tags) turns tags missing from the images into errors and undeclared tags
    on images into errors.
    """
    if classification_type not in CLASSIFICATION_TYPES:
        raise ValueError(f"classification_type must be one of {CLASSIFICATION_TYPES}, got {classification_type!r}")
    if not 1 <= min_per_tag <= recommended_per_tag:
        raise ValueError(f"need 1 <= min_per_tag <= recommended_per_tag, got {min_per_tag} and {recommended_per_tag}")
    if imbalance_ratio < 1:
        raise ValueError(f"imbalance_ratio must be at least 1, got {imbalance_ratio}")
    findings: list[Finding] = []
    errors_by_path: defaultdict[str, int] = defaultdict(int)
    for info in images:
        own = _image_findings(info, classification_type)
        findings.extend(own)
        errors_by_path[info.path] += sum(f.severity == "error" for f in own)
    duplicates = _duplicate_findings(images)
    findings.extend(duplicates)
    repeated = {f.path for f in duplicates}
    counts: Counter[str] = Counter()
    for info in images:
        if not errors_by_path[info.path] and info.path not in repeated:
            counts.update(set(info.tags))
    seen = {tag for info in images for tag in info.tags}
    findings.extend(_tag_findings(counts, seen, min_per_tag=min_per_tag, recommended_per_tag=recommended_per_tag,
                                  imbalance_ratio=imbalance_ratio, expected_tags=expected_tags))
    return sorted(findings, key=lambda f: (f.severity != "error", f.path or "", f.tag or "", f.code))

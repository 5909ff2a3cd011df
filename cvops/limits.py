"""Custom Vision's published limits, as this client enforces them before a call: each number once.

Why one module: lint, image validation, batching, paging and the sample scenes all check the same service limits;
written in each, one would drift (a 4 MB check where 6 MB is meant, a batch of 65) and the service would answer
image by image with ``ErrorImageSize`` or a 400. The local service (``emulator/``) keeps its own copy on purpose: a
stand-in must not share the client's assumptions, or a wrong number here would pass every test there.

Sources: Microsoft Learn, Custom Vision "Limits and quotas" (image sizes, formats, tags, images per tag, batches);
the Training API specs (``customvision-training`` v3.3 / v3.4-preview,
``Training.json``) for paging and metadata. ``tests/unit/test_limit_literals.py`` keeps these numbers out of every
other module of the project.

Sizes: the service counts megabytes as MiB (Azure AI services' convention), so 6 MB is 6 * 1024 * 1024 bytes.
"""

from __future__ import annotations

__all__ = [
    "ACCEPTED_FORMATS",
    "CONTENT_SAFETY_FORMATS",
    "CONTENT_SAFETY_MAX_BYTES",
    "CONTENT_SAFETY_MIN_SIDE",
    "MAX_ASPECT_RATIO",
    "MAX_IMAGES_PER_BATCH",
    "MAX_ITERATIONS",
    "MAX_METADATA_PAIRS",
    "MAX_METADATA_VALUE_CHARS",
    "MAX_PAGE_SIZE",
    "MAX_PREDICTION_BYTES",
    "MAX_SIDE",
    "MAX_TAGS_PER_BATCH",
    "MAX_TAGS_PER_IMAGE",
    "MAX_TRAINING_BYTES",
    "MIN_IMAGES_PER_TAG",
    "RECOMMENDED_IMAGES_PER_TAG",
    "UPSCALED_BELOW_SIDE",
]

_MB = 1024 * 1024

ACCEPTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "BMP", "GIF"})
"""Image formats the service accepts, by Pillow's names ("Limits and quotas": JPEG, PNG, BMP, GIF)."""

MAX_TRAINING_BYTES = 6 * _MB
"""Largest image a training upload accepts ("Limits and quotas": 6 MB); larger ones fail with ``ErrorImageSize``."""

MAX_PREDICTION_BYTES = 4 * _MB
"""Largest image a prediction call accepts ("Limits and quotas": 4 MB)."""

MAX_SIDE = 10_240
"""Longest side in pixels ("Limits and quotas": 10,240 px; users have measured refusals from 10,000)."""

MAX_ASPECT_RATIO = 25.0
"""Longest side over shortest side ("Limits and quotas": at most 25:1)."""

UPSCALED_BELOW_SIDE = 256
"""The service upscales an image whose shortest side is under this ("Limits and quotas": 256 px): it trains and
predicts on blur, and shrinking an image below it loses the picture."""

MAX_TAGS_PER_IMAGE = 100
"""Tags one image may carry ("Limits and quotas")."""

MIN_IMAGES_PER_TAG = 5
"""Training refuses a classifier with a tag of fewer images ("Limits and quotas": min labeled images per tag, 5)."""

RECOMMENDED_IMAGES_PER_TAG = 50
"""What Microsoft recommends per tag for a usable classifier ("Limits and quotas": 50+ recommended)."""

MAX_IMAGES_PER_BATCH = 64
"""Images in one create-images call (``images/files``, ``images/urls``, multipart ``images``): "Limits and quotas",
and the Training spec's CreateImagesFromData ("a maximum of 64 files")."""

MAX_TAGS_PER_BATCH = 20
"""Distinct tags in one create-images call ("Limits and quotas")."""

MAX_ITERATIONS = 20
"""Iterations a project keeps, F0 and S0 ("Limits and quotas"): training a 21st needs an old one deleted."""

MAX_PAGE_SIZE = 256
"""``take`` of GetImages and the other image listings (Training spec: "Defaults to 50, limited to 256")."""

MAX_METADATA_PAIRS = 10
"""Metadata key-value pairs per image (Training v3.4-preview spec, ImageMetadataUpdateEntry: "Limited to 10")."""

MAX_METADATA_VALUE_CHARS = 256
"""Characters in one metadata value (Training v3.4-preview spec: "The length of value is limited to 256")."""

CONTENT_SAFETY_MAX_BYTES = 4 * _MB
"""Largest image Azure AI Content Safety's ``image:analyze`` takes (its spec and overview: 4 MB). Not a Custom Vision
limit, but the app checks both before calling, so both live here."""

CONTENT_SAFETY_MIN_SIDE = 50
"""Shortest side Content Safety analyses (50 x 50 px at least)."""

CONTENT_SAFETY_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"})
"""Image formats Content Safety reads, by Pillow's names."""

"""Limits of the S0 tier and the values the API accepts: what every model module checks requests against."""

from __future__ import annotations

import re

# Limits of the S0 tier (Microsoft Learn, "Limits and quotas"), and of one upload batch.
MAX_PROJECTS = 100


MAX_IMAGES_PER_PROJECT = 100_000


MAX_TAGS_PER_PROJECT = 500


MAX_ITERATIONS_PER_PROJECT = 20


MAX_TAGS_PER_IMAGE = 100


MAX_IMAGES_PER_BATCH = 64


MAX_TAGS_PER_BATCH = 20


MIN_IMAGES_PER_TAG = 5


MAX_TAKE = 256


CLASSIFICATION_TYPES = ("Multiclass", "Multilabel")


TAG_TYPES = ("Regular", "Negative", "GeneralProduct")


EXPORT_PLATFORMS = ("CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK", "OpenVino")


# What this service really exports (models/exports.py): compact classification iterations to ONNX, float32 (no flavor)
# or float16. Only these are advertised (domains' `exportable`/`exportablePlatforms`, iterations' `exportable`/
# `exportableTo`): a client that believes an answer must get the export. The domains' real export platforms
# (emulator/data/domains.json) still decide which targetExportPlatforms a project may name, as on Azure.
EXPORTED_PLATFORMS = ("ONNX",)


EXPORTED_FLAVORS = (None, "OnnxFloat16")


DEFAULT_DOMAIN_ID = "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31"  # "General", what the service picks when none is given


# An ARM resource id of a Cognitive Services account: what PublishIteration's predictionId must be.
PREDICTION_RESOURCE_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.CognitiveServices/accounts/[^/]+$",
    re.IGNORECASE,
)


PUBLISH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$")


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

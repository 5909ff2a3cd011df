"""The service's state and behaviour: projects, tags, images, iterations, predictions, and the rules the real service
enforces on them (limits, statuses, error codes). No HTTP here: `responses.py` translates requests into these calls.

Answers are plain dicts shaped and named exactly as the spec's JSON (camelCase), so the HTTP layer only serialises.

Split by concern, the way moto composes its larger backends: each module holds one part of the behaviour as a class
over the state in `base`, and `CustomVisionBackend` combines them. Rules that need no state are plain functions in
modules of their own.

- `limits`: the S0 tier's limits and the values the API accepts
- `base`: shared state, ids and times, row lookups, the one image decode, where bytes are stored
- `projects`, `tags`: domains, projects and their tags
- `training_images`, `features_cache`, `metadata_filter`: uploads, tags and metadata of images, queries, features
- `iterations`, `training_jobs`, `performance`: iteration records, TrainProject and its outcome, evaluation
- `predictions`, `prediction_query`, `publishing`: quick tests, classification, stored predictions, publish names
- `exports`: ExportIteration / GetExports of compact-domain iterations (ONNX) and the packages they point at
"""

from __future__ import annotations

from ..learning_interface import Learning
from ..store import Storage
from .base import BackendBase, load_domains, new_id, now
from .exports import ExportModels
from .features_cache import FeatureCacheModels, UnreadableTrainingImages
from .iterations import RESTART_REASON, IterationModels
from .limits import (
    CLASSIFICATION_TYPES,
    DEFAULT_DOMAIN_ID,
    EMAIL,
    EXPORT_PLATFORMS,
    MAX_IMAGES_PER_BATCH,
    MAX_IMAGES_PER_PROJECT,
    MAX_ITERATIONS_PER_PROJECT,
    MAX_PROJECTS,
    MAX_TAGS_PER_BATCH,
    MAX_TAGS_PER_IMAGE,
    MAX_TAGS_PER_PROJECT,
    MAX_TAKE,
    MIN_IMAGES_PER_TAG,
    PREDICTION_RESOURCE_ID,
    PUBLISH_NAME,
    TAG_TYPES,
)
from .metadata_filter import metadata_filter_sql
from .performance import PerformanceModels
from .prediction_query import MAX_PREDICTION_QUERY_TAGS, parse_prediction_query, within_thresholds
from .predictions import PredictionModels, ranked_predictions
from .project_transfer import ProjectTransferModels
from .projects import ProjectModels
from .publishing import PublishingModels
from .tags import TagModels
from .training_images import ImageSource, TrainingImageModels
from .training_jobs import (
    SECONDS_PER_BUDGET_HOUR,
    TrainingJob,
    TrainingJobModels,
    advanced_budget_seconds,
    training_fingerprint,
)


class CustomVisionBackend(ProjectModels, TagModels, TrainingImageModels, TrainingJobModels, PerformanceModels,
                          PredictionModels, PublishingModels, ExportModels, ProjectTransferModels):
    """All projects of one service instance."""

    def __init__(self, storage: Storage, learning: Learning, *, base_url_hint: str = "") -> None:
        super().__init__(storage, learning, base_url_hint=base_url_hint)
        self._fail_interrupted_training()


__all__ = [
    "CLASSIFICATION_TYPES", "DEFAULT_DOMAIN_ID", "EMAIL", "EXPORT_PLATFORMS", "MAX_IMAGES_PER_BATCH",
    "MAX_IMAGES_PER_PROJECT", "MAX_ITERATIONS_PER_PROJECT", "MAX_PREDICTION_QUERY_TAGS", "MAX_PROJECTS",
    "MAX_TAGS_PER_BATCH", "MAX_TAGS_PER_IMAGE", "MAX_TAGS_PER_PROJECT", "MAX_TAKE", "MIN_IMAGES_PER_TAG",
    "PREDICTION_RESOURCE_ID", "PUBLISH_NAME", "RESTART_REASON", "SECONDS_PER_BUDGET_HOUR", "TAG_TYPES",
    "BackendBase", "CustomVisionBackend", "ExportModels", "FeatureCacheModels", "ImageSource", "IterationModels",
    "PerformanceModels", "PredictionModels", "ProjectModels",
    "ProjectTransferModels", "PublishingModels", "TagModels", "TrainingImageModels",
    "TrainingJob", "TrainingJobModels", "UnreadableTrainingImages", "advanced_budget_seconds", "load_domains",
    "metadata_filter_sql", "new_id", "now", "parse_prediction_query", "ranked_predictions", "training_fingerprint",
    "within_thresholds",
]

"""The seam between the service and its learning code (`emulator.features`, `emulator.classifier`).

The service only needs a few things from learning: a feature extractor (and its version, to know when cached features
are stale), a train function, a way to reload a model from JSON, and the performance metrics. The extractor also takes
an image the service has already decoded to check it (`features_of_image`, with `decode_size` saying how small a JPEG
may be decoded), so an upload or a prediction is decoded once, not twice. The extractor can also
describe the mirror image of a picture (`mirror=True`): Advanced training passes those as `augmented_features`, extra
examples that cost no upload, as Azure's Advanced training augments its data. Passing them as one
object lets tests or benchmarks swap the learning code without touching the HTTP side; the real modules are imported
only when first used, so the service starts (and answers everything but training) even while they are being changed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image


class Model(Protocol):
    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...
    def to_json(self) -> dict: ...


class TrainingResult(Protocol):
    model: Model
    oof_probabilities: np.ndarray
    fold_of_image: np.ndarray
    settings: dict


class Learning(Protocol):
    feature_version: str
    decode_size: tuple[int, int]

    def extract_features(self, image_bytes: bytes, *, mirror: bool = False) -> np.ndarray: ...

    def features_of_image(self, image: Image.Image, *, mirror: bool = False) -> np.ndarray: ...

    def train(self, features: np.ndarray, labels: list[list[int]], n_tags: int, classification_type: str, *,
              advanced: bool = False, budget_seconds: float = 0.0, seed: int = 0,
              augmented_features: np.ndarray | None = None) -> TrainingResult: ...

    def model_from_json(self, data: dict) -> Model: ...

    def performance(self, oof_probabilities: np.ndarray, labels: list[list[int]], fold_of_image: np.ndarray,
                    threshold: float) -> dict: ...


@dataclass
class ModuleLearning:
    """Learning backed by the modules `emulator.features` and `emulator.classifier` (imported on first use)."""

    features_module: str = "emulator.features"
    classifier_module: str = "emulator.classifier"

    def _features(self) -> Any:
        return importlib.import_module(self.features_module)

    def _classifier(self) -> Any:
        return importlib.import_module(self.classifier_module)

    @property
    def feature_version(self) -> str:
        return str(self._features().FEATURE_VERSION)

    @property
    def decode_size(self) -> tuple[int, int]:
        return tuple(self._features().DECODE_SIZE)

    def extract_features(self, image_bytes: bytes, *, mirror: bool = False) -> np.ndarray:
        return self._features().extract_features(image_bytes, mirror=mirror)

    def features_of_image(self, image: Image.Image, *, mirror: bool = False) -> np.ndarray:
        return self._features().features_of_image(image, mirror=mirror)

    def train(self, features: np.ndarray, labels: list[list[int]], n_tags: int, classification_type: str, *,
              advanced: bool = False, budget_seconds: float = 0.0, seed: int = 0,
              augmented_features: np.ndarray | None = None) -> TrainingResult:
        return self._classifier().train(features, labels, n_tags, classification_type, advanced=advanced,
                                     budget_seconds=budget_seconds, seed=seed, augmented_features=augmented_features)

    def model_from_json(self, data: dict) -> Model:
        return self._classifier().Model.from_json(data)

    def performance(self, oof_probabilities: np.ndarray, labels: list[list[int]], fold_of_image: np.ndarray,
                    threshold: float) -> dict:
        return self._classifier().performance(oof_probabilities, labels, fold_of_image, threshold)

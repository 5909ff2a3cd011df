"""Features of stored images: computed from the upload's own decode, cached as `.npy` per feature version, recomputed
when missing or stale; and the error that names every image training could not read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import images as imagelib
from .base import BackendBase


class UnreadableTrainingImages(ValueError):
    """Training images whose features cannot be computed; the message names them and says what to do."""

    def __init__(self, problems: Sequence[tuple[str, str]], total: int) -> None:
        shown = "; ".join(f"image {image_id}: {reason}" for image_id, reason in problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        super().__init__(
            f"{len(problems)} of {total} training images could not be read, so nothing was trained ({shown}{more}). "
            "Delete these images (DeleteImages), upload them again, and train the project again.")
        self.image_ids = [image_id for image_id, _ in problems]


class FeatureCacheModels(BackendBase):
    """Image checks with one decode, and the cached features of stored images."""

    def _cache_features(self, image_id: str, decoded: imagelib.DecodedImage) -> np.ndarray | None:
        """Compute features once, when the image arrives (from the pixels its checks decoded), so training only
        reads them.

        Failure here does not fail the upload (the image already passed the format checks); training retries and
        reports a clear reason if the image still cannot be featurised. Mirrored features are not computed here:
        only Advanced training uses them, so they are made (and cached) the first time it does.
        """
        try:
            features = np.asarray(self.learning.features_of_image(decoded.pixels), dtype=np.float32)
            self.blobs.put_array(self._feature_key(image_id), features)
            return features
        except (ImportError, ValueError, AttributeError):
            return None

    def features_of(self, image_id: str, *, mirrored: bool = False) -> np.ndarray:
        """Cached features of a stored image, or of its mirror image (computed now if missing or made by an older
        feature version). ValueError saying why when the image's bytes are gone or cannot be decoded."""
        key = self._feature_key(image_id, mirrored=mirrored)
        cached = self.blobs.get_array(key)
        if cached is not None:
            return cached
        data = self.blobs.get(f"images/{image_id}")
        if data is None:
            raise ValueError("its stored bytes are missing from the service's data directory")
        features = np.asarray(self.learning.extract_features(data, mirror=mirrored), dtype=np.float32)
        self.blobs.put_array(key, features)
        return features

    def training_features(self, image_ids: Sequence[str], *, mirrored: bool = False) -> np.ndarray:
        """(n_images, n_features) for a training job; UnreadableTrainingImages naming every image that failed.

        All images are tried before failing, so one Failed iteration lists every image to fix, not just the first.
        """
        rows, bad = [], []
        for image_id in image_ids:
            try:
                rows.append(self.features_of(image_id, mirrored=mirrored))
            except ValueError as exc:
                bad.append((image_id, str(exc)))
        if bad:
            raise UnreadableTrainingImages(bad, len(image_ids))
        return np.stack(rows)

    @staticmethod
    def _compact_feature_key(image_id: str, version: str, *, mirrored: bool = False) -> str:
        return f"features/{version}/{'mirrored/' if mirrored else ''}{image_id}.npy"

    def compact_training_features(self, image_ids: Sequence[str], *, mirrored: bool = False) -> np.ndarray:
        """(n_images, n_features) of the compact-domain ONNX graph's feature part, cached per image like the others.

        Made at training time (the upload's features are the other domains'; a project can change domain), from the
        stored bytes preprocessed as an exported model's user would (`compact_model.preprocess`) and run by
        onnxruntime, so what training fits is exactly what the whole graph computes when it predicts.
        UnreadableTrainingImages naming every image that failed.
        """
        from .. import compact_model

        version = compact_model.FEATURES_CACHE_VERSION
        out: dict[str, np.ndarray] = {}
        todo: list[tuple[str, np.ndarray]] = []
        bad = []
        for image_id in image_ids:
            cached = self.blobs.get_array(self._compact_feature_key(image_id, version, mirrored=mirrored))
            if cached is not None:
                out[image_id] = cached
                continue
            data = self.blobs.get(f"images/{image_id}")
            if data is None:
                bad.append((image_id, "its stored bytes are missing from the service's data directory"))
                continue
            try:
                todo.append((image_id, compact_model.preprocess(data, mirror=mirrored)))
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                bad.append((image_id, f"cannot read image ({type(exc).__name__}: {exc})"))
        if bad:
            raise UnreadableTrainingImages(bad, len(image_ids))
        for start in range(0, len(todo), 16):
            chunk = todo[start:start + 16]
            features = compact_model.features_of_batch(np.concatenate([pixels for _, pixels in chunk]))
            for (image_id, _), row in zip(chunk, features, strict=True):
                self.blobs.put_array(self._compact_feature_key(image_id, version, mirrored=mirrored), row)
                out[image_id] = row
        return np.stack([out[i] for i in image_ids])

    def _delete_image_blobs(self, image_id: str) -> None:
        super()._delete_image_blobs(image_id)
        for mirrored in (False, True):  # the compact graph's cached features too (the version is fixed: no import)
            for version in _COMPACT_FEATURE_CACHE_VERSIONS:
                self.blobs.delete(self._compact_feature_key(image_id, version, mirrored=mirrored))


_COMPACT_FEATURE_CACHE_VERSIONS = ("onnx-compact-2+decode-m8-gap-2", "onnx-compact-2")
"""emulator.compact_model.FEATURES_CACHE_VERSION (checked by its tests), then the keys earlier versions cached under."""

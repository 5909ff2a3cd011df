"""The compact-domain model is an ONNX graph: on known weights onnxruntime's answer equals numpy's, in float32 and in
the OnnxFloat16 flavor, with the metadata Microsoft's export samples read."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from emulator import compact_model as cm


def _stored(classification_type: str, n_tags: int = 4, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "format": "cvops-linear-model", "formatVersion": 1, "classificationType": classification_type,
        "featureVersion": cm.FEATURE_VERSION, "labels": [f"tag{k}" for k in range(n_tags)],
        "mean": rng.normal(0, 0.2, cm.FEATURE_DIM).tolist(), "scale": rng.uniform(0.5, 2.0, cm.FEATURE_DIM).tolist(),
        "coef": rng.normal(0, 0.05, (n_tags, cm.FEATURE_DIM)).tolist(), "intercept": rng.normal(0, 1, n_tags).tolist(),
    }


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    top = rng.integers(0, 255, 3)
    pixels = np.zeros((180, 260, 3), np.uint8)
    pixels[:90] = top
    pixels[90:] = rng.integers(0, 255, (90, 260, 3))
    return Image.fromarray(pixels, "RGB")


def _numpy_head(stored: dict, features: np.ndarray) -> np.ndarray:
    z = ((features - np.asarray(stored["mean"])) / np.asarray(stored["scale"])) @ np.asarray(stored["coef"]).T
    z = z + np.asarray(stored["intercept"])
    if stored["classificationType"] == "Multilabel":
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("classification_type", ["Multiclass", "Multilabel"])
def test_graph_on_known_weights_equals_numpy_in_both_flavors(classification_type):
    stored = _stored(classification_type)
    pixels = cm.preprocess(_image(1))
    features = cm.features_of_batch(pixels).astype(np.float64)
    expected = _numpy_head(stored, features)[0]

    model = cm.model_proto(stored)
    onnx.checker.check_model(model)
    assert {p.key: p.value for p in model.metadata_props}["Image.BitmapPixelFormat"] == cm.PIXEL_FORMAT
    assert {p.key: p.value for p in model.metadata_props}["Image.NominalPixelRange"] == "NominalRange_0_255"
    session = ort.InferenceSession(cm.model_bytes(stored), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.shape, inp.type) == ("data", [1, 3, cm.SIDE, cm.SIDE], "tensor(float)")
    out = session.run(None, {"data": pixels})[0]
    assert out.shape == (1, 4)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    if classification_type == "Multiclass":
        assert out.sum() == pytest.approx(1.0, abs=1e-5)

    half = cm.model_proto(stored, flavor="OnnxFloat16")
    onnx.checker.check_model(half)
    half_session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    assert half_session.get_inputs()[0].type == "tensor(float16)"
    out16 = half_session.run(None, {"data": pixels.astype(np.float16)})[0]
    assert out16.dtype == np.float16 and out16.shape == (1, 4)
    np.testing.assert_allclose(out16[0].astype(np.float64), expected, atol=2e-2)
    assert len(half.SerializeToString()) < len(cm.model_bytes(stored))


def test_preprocessing_is_the_export_samples_resize_in_bgr_0_255():
    image = _image(2)
    pixels = cm.preprocess(image)
    assert pixels.shape == (1, 3, cm.SIDE, cm.SIDE) and pixels.dtype == np.float32
    sample = np.asarray(image.resize((cm.SIDE, cm.SIDE)), np.float32).transpose(2, 0, 1)[None][:, ::-1]
    np.testing.assert_array_equal(pixels, sample)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    np.testing.assert_array_equal(cm.preprocess(buffer.getvalue()), pixels)


def test_labels_and_compact_domains():
    assert cm.labels(_stored("Multiclass", 3)) == ["tag0", "tag1", "tag2"]
    assert cm.is_compact("0732100f-1a38-4e49-a514-c9b44c697ab5")  # General (compact)
    assert cm.is_compact({"domainId": "a1db07ca-a19a-4830-bae8-e004a42dc863"})
    assert not cm.is_compact("ee85a74c-405e-4adc-bb47-ffa8ca0c9f31")  # General
    assert not cm.is_compact("a27d5ca5-bb19-49d8-a70a-fec086c47f5b")  # object detection compact: not classified here
    with pytest.raises(ValueError, match="flavor"):
        cm.model_proto(_stored("Multiclass"), flavor="CoreML")


def test_the_backend_recognises_the_compact_feature_version_without_importing_onnx():
    from emulator.models import features_cache, predictions

    assert features_cache._COMPACT_FEATURE_CACHE_VERSIONS[0] == cm.FEATURES_CACHE_VERSION
    assert predictions._COMPACT_FEATURE_VERSION == cm.FEATURE_VERSION

"""Small ONNX models in Azure ML AutoML's image-classification export format, and Microsoft's documented preprocessing
written independently of the runner, for the AutoML runner's tests.

Format (Microsoft Learn, "Make predictions with ONNX on computer vision models from AutoML"): model.onnx + labels.json
(a JSON list); input ``input1`` ``[batch, 3, 224, 224]``; output ``output1`` ``[batch, N]`` logits. The graph here is a
fixed random projection of every input value (logits = flatten(x) @ W + b), so any difference in resize, crop, range,
mean/std or channel order moves the logits: a runner that feeds the model otherwise than the reference fails the tests.
The reference computes the same logits with numpy, so it does not share onnxruntime with the runner either.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

LABELS = ("beach", "forest", "mountain", "city")
SIDE = 224


def weights(n: int = len(LABELS), seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """W [3*224*224, n] and b [n], scaled so the logits spread over a few units (probabilities not all 0 or 1)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3 * SIDE * SIDE, n)).astype(np.float32) * np.float32(3.0 / np.sqrt(3 * SIDE * SIDE))
    b = rng.standard_normal(n).astype(np.float32) * np.float32(0.5)
    return w, b


def build_onnx(*, n: int = len(LABELS), input_name: str = "input1", output_name: str = "output1",
               side: int = SIDE, batch: object = "batch", seed: int = 7) -> bytes:
    """The model's bytes; the keyword arguments break one part of the contract at a time for the refusal tests."""
    w, b = weights(n, seed)
    if side != SIDE:  # another crop size: a projection of that size
        w = np.resize(w, (3 * side * side, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", [input_name], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "W", "B"], [output_name])],
        "automl-test-export",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, side, side])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, n])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_zip(labels: object = LABELS, *, folder: str = "outputs/", extra: dict[str, bytes] | None = None,
              **kwargs) -> bytes:
    """A zip as AutoML's outputs folder holds the export: model.onnx and labels.json."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{folder}model.onnx", build_onnx(**kwargs))
        archive.writestr(f"{folder}labels.json", json.dumps(list(labels) if isinstance(labels, tuple) else labels))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def reference_input(image: Image.Image) -> np.ndarray:
    """Microsoft's "With PyTorch" sample, without torch: transforms.Resize(256) (shorter side to 256, the longer
    int(256 * long / short), bilinear on a PIL image), CenterCrop(224) (offsets int(round((size - 224) / 2))),
    ToTensor (/255, CHW), Normalize(ImageNet mean, std), a batch of one."""
    image = image.convert("RGB")
    w, h = image.size
    size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
    image = image.resize(size, Image.BILINEAR)
    top = round((size[1] - 224) / 2.0)
    left = round((size[0] - 224) / 2.0)
    image = image.crop((left, top, left + 224, top + 224))
    chw = np.array(image, dtype=np.float64).transpose(2, 0, 1) / 255.0
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    return ((chw - mean) / std)[np.newaxis]


def reference_probabilities(data: bytes, *, multilabel: bool, labels=LABELS, seed: int = 7) -> dict[str, float]:
    """The documented pipeline end to end: decode, preprocess, the model's own arithmetic, softmax or sigmoid."""
    w, b = weights(len(labels), seed)
    logits = reference_input(Image.open(io.BytesIO(data))).reshape(1, -1) @ w.astype(np.float64) + b
    logits = logits.reshape(-1)
    if multilabel:
        probs = 1 / (1 + np.exp(-logits))
    else:
        e = np.exp(logits - logits.max())
        probs = e / e.sum()
    return dict(zip(labels, (float(p) for p in probs), strict=True))

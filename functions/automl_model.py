"""Run an Azure ML AutoML image-classification ONNX export in-process: the successor's models classify through the same
app, `cvops predict --model` and `cvops evaluate --model` as Custom Vision's exports (functions/exported_model.py).

The contract (Microsoft Learn, "Make predictions with ONNX on computer vision models from AutoML", multi-class and
multi-label tabs): ``model.onnx`` and ``labels.json`` (a JSON list of the tags, in output order); one input ``input1``
``[batch, 3, 224, 224]`` float; one output ``output1`` ``[batch, N]`` raw logits. Preprocessing: RGB, resize to 256
(``valid_resize_size``), centre crop 224 (``valid_crop_size``), /255, ImageNet mean (0.485, 0.456, 0.406) and std
(0.229, 0.224, 0.225). Scores: softmax for a Multiclass model, sigmoid for a Multilabel one. The files do not say which
of the two the model is, so the caller states it (the routing policy's ``classification_type``).

Which resize: the page has two samples that differ. "Without PyTorch" squashes the image to 256 x 256 with Pillow's
default (bicubic) filter; "With PyTorch" runs torchvision's ``Resize(256)``, which scales the *shorter* side to 256 and
keeps the aspect ratio (bilinear), then ``CenterCrop(224)``. This runner follows the PyTorch sample: it is the same
torchvision transform AutoML applies to its validation images while training (the page's own words: the values "used in
the transformation of the validation dataset during training"), so the model sees pictures shaped as it learnt them;
squashing a 4:3 photo changes every object's proportions. For square images the two agree up to the filter.

Only the defaults are accepted (crop 224, resize 256): a model trained with other ``valid_crop_size`` /
``valid_resize_size`` values does not record the resize size, and a guessed one would route by a quietly wrong model,
so anything else is refused with :class:`ModelRefused` naming what was found.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from functions import images
from functions.exported_model import (
    MAX_FILE_BYTES,
    MAX_LABELS_BYTES,
    ModelRefused,
    _session,
    export_members,
    read_capped,
)

__all__ = ["CONTRACT", "CROP", "MEAN", "RESIZE", "STD", "AutoMLModel", "parse_labels"]

CONTRACT = "azureml-automl"
INPUT_NAME, OUTPUT_NAME = "input1", "output1"
RESIZE, CROP = 256, 224  # AutoML's valid_resize_size and valid_crop_size defaults
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def parse_labels(text: str, name: str) -> list[str]:
    """labels.json: a JSON list of distinct, non-empty tag names (ModelRefused naming what is wrong). Pure."""
    try:
        labels = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelRefused(f"{name}: labels.json is not JSON ({exc.msg})") from None
    if not isinstance(labels, list) or not labels or not all(isinstance(t, str) and t.strip() for t in labels):
        raise ModelRefused(f"{name}: labels.json must be a non-empty JSON list of tag names, found "
                           f"{type(labels).__name__} {str(labels)[:80]}")
    if len(set(labels)) != len(labels):
        raise ModelRefused(f"{name}: labels.json names a tag twice: {sorted(t for t in set(labels) if labels.count(t) > 1)}")
    return labels


PICTURE = images.PictureRule(RESIZE, keep_aspect=True)
"""The picture the runner resizes to (torchvision's ``Resize(256)``): validation makes it, strip by strip."""


def resized_size(width: int, height: int, short: int = RESIZE) -> tuple[int, int]:
    """torchvision's ``Resize(short)`` output size: the shorter side to ``short``, the longer truncated in proportion."""
    return images.PictureRule(short, keep_aspect=True).target(width, height)


def _dims(shape: Any) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True)
class AutoMLModel:
    """A loaded, checked AutoML export. ``size`` is the side the picture is decoded for (the resize, 256): what
    :func:`functions.images.normalise` and :func:`functions.images.decode_for_model` take as ``model_side``."""

    sha256: str
    labels: tuple[str, ...]
    multilabel: bool
    source: str = ""
    size: int = RESIZE
    _session: Any = field(default=None, repr=False, compare=False)

    @property
    def picture(self) -> images.PictureRule:
        """What :func:`functions.images.normalise` takes as ``model_side`` to make this runner's own picture."""
        return PICTURE

    @classmethod
    def from_parts(cls, sha256: str, model_bytes: bytes, labels: list[str], name: str, *,
                   multilabel: bool) -> AutoMLModel:
        session = _session(sha256, model_bytes)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        found = ", ".join(f"{i.name} {_dims(i.shape)}" for i in inputs)
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise ModelRefused(f"{name}: the model's inputs are {found}; an AutoML export has one, {INPUT_NAME} "
                               f"[batch, 3, {CROP}, {CROP}]")
        shape = list(inputs[0].shape)
        if not (len(shape) == 4 and shape[1] == 3 and shape[2] == CROP and shape[3] == CROP):
            raise ModelRefused(f"{name}: the input {INPUT_NAME} is {_dims(shape)}; this runner takes AutoML's default "
                               f"[batch, 3, {CROP}, {CROP}] (valid_crop_size {CROP}, valid_resize_size {RESIZE})")
        if inputs[0].type != "tensor(float)":
            raise ModelRefused(f"{name}: the input {INPUT_NAME} is {inputs[0].type}; AutoML's is tensor(float)")
        named = [o for o in outputs if o.name == OUTPUT_NAME]
        if not named:
            raise ModelRefused(f"{name}: the model has no output {OUTPUT_NAME} (its outputs: "
                               f"{', '.join(o.name for o in outputs)}); an AutoML export's logits are {OUTPUT_NAME}")
        out_shape = list(named[0].shape)
        if not (len(out_shape) == 2 and out_shape[1] == len(labels)):
            raise ModelRefused(f"{name}: the output {OUTPUT_NAME} is {_dims(out_shape)}; it must be [batch, N] "
                               f"logits with N = {len(labels)} labels in labels.json")
        return cls(sha256=sha256, labels=tuple(labels), multilabel=multilabel, source=name, _session=session)

    @classmethod
    def load(cls, source: str | Path | bytes, *, multilabel: bool = False) -> AutoMLModel:
        """A zip holding model.onnx and labels.json (any folder inside), a folder holding both, or model.onnx with
        labels.json beside it."""
        name = str(source) if isinstance(source, (str, Path)) else "<bytes>"
        if isinstance(source, (str, Path)) and Path(source).is_dir():
            model_path, labels_path = Path(source) / "model.onnx", Path(source) / "labels.json"
            if not model_path.is_file() or not labels_path.is_file():
                raise ModelRefused(f"{name}: an AutoML model folder holds model.onnx and labels.json")
            data = read_capped(model_path)
            labels_text = read_capped(labels_path, MAX_LABELS_BYTES, "a labels file").decode("utf-8-sig")
            return cls.from_parts(hashlib.sha256(data).hexdigest(), data, parse_labels(labels_text, name), name,
                                  multilabel=multilabel)
        data = read_capped(Path(source)) if isinstance(source, (str, Path)) else bytes(source)
        if len(data) > MAX_FILE_BYTES:
            raise ModelRefused(f"the model is {len(data):,} bytes, above the runner's limit of {MAX_FILE_BYTES:,}")
        sha256 = hashlib.sha256(data).hexdigest()
        if zipfile.is_zipfile(io.BytesIO(data)):
            model_bytes, labels_bytes = export_members(data, "labels.json")
            return cls.from_parts(sha256, model_bytes, parse_labels(labels_bytes.decode("utf-8-sig"), name), name,
                                  multilabel=multilabel)
        beside = Path(source).parent / "labels.json" if isinstance(source, (str, Path)) else None
        if beside is None or not beside.is_file():
            raise ModelRefused(f"{name} is a bare model with no labels: put labels.json beside it, or give the zip "
                               "or folder that holds both")
        labels_text = read_capped(beside, MAX_LABELS_BYTES, "a labels file").decode("utf-8-sig")
        return cls.from_parts(sha256, data, parse_labels(labels_text, name), name,
                              multilabel=multilabel)

    def describe(self) -> dict[str, Any]:
        """What a record or a report says about the model that decided."""
        return {"sha256": self.sha256, "labels": list(self.labels), "contract": CONTRACT,
                "task": "multilabel" if self.multilabel else "multiclass"}

    def tensor(self, image: Image.Image) -> np.ndarray:
        """The input of Microsoft's PyTorch sample: RGB, shorter side to 256 (bilinear), centre crop 224, /255,
        ImageNet mean and std, NCHW float32."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        width, height = resized_size(*rgb.size)
        resized = rgb.resize((width, height), Image.Resampling.BILINEAR)
        top, left = round((height - CROP) / 2.0), round((width - CROP) / 2.0)  # torchvision's CenterCrop
        cropped = resized.crop((left, top, left + CROP, top + CROP))
        array = (np.asarray(cropped, dtype=np.float32) / 255.0 - MEAN) / STD
        return np.ascontiguousarray(array.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities from logits: sigmoid for Multilabel, softmax for Multiclass (float64, stable)."""
        values = np.asarray(logits, dtype=np.float64).reshape(-1)
        if self.multilabel:
            return 1.0 / (1.0 + np.exp(-values))
        shifted = np.exp(values - values.max())
        return shifted / shifted.sum()

    def predict_image(self, image: Image.Image) -> list[tuple[str, float]]:
        (logits,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: self.tensor(image)})
        pairs = [(tag, float(p)) for tag, p in zip(self.labels, self.scores(logits), strict=True)]
        return sorted(pairs, key=lambda pair: -pair[1])

    def predict_checked(self, checked: images.NormalisedImage) -> list[tuple[str, float]]:
        """As :meth:`functions.exported_model.ExportedModel.predict_checked`."""
        if checked.decoded is not None:
            return self.predict_image(checked.decoded)
        return self.predict(checked.data, decode_bytes=checked.decode_bytes)

    def predict(self, image_bytes: bytes, *, decode_bytes: int | None = None) -> list[tuple[str, float]]:
        """As :meth:`functions.exported_model.ExportedModel.predict`: decoded under the app's memory pool."""
        if decode_bytes is None:
            plan = images.memory_plan(image_bytes, model_side=self.picture)
            decode_bytes = plan.peak_bytes if isinstance(plan, images.MemoryEstimate) else 0
        with images.reserved(decode_bytes), images.decode_for_model(image_bytes, self.picture) as image:
            return self.predict_image(image)

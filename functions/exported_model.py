"""Run a Custom Vision ONNX export in-process with onnxruntime: the Function App, `cvops predict --model` and
`cvops evaluate --model` all classify through :class:`ExportedModel`.

Why one runner: an exported model is only useful if every place that classifies feeds it the same way. The contract is
Microsoft's export sample's (Azure-Samples/customvision-export-samples, ONNX classification): a zip with ``model.onnx``
and ``labels.txt``; one image input ``[1, 3, S, S]`` (float32, or float16 for the ``OnnxFloat16`` flavor); metadata
``Image.BitmapPixelFormat`` (``Bgr8``/``Rgb8``) and ``Image.NominalPixelRange`` (``NominalRange_0_255``/
``Normalized_0_1``); the first output ``[1, N]`` probabilities in labels.txt's order. A file outside that contract is
refused with :class:`ModelRefused` naming what it found: a guessed channel order or range would route images by a
model that is quietly wrong.

Feeding: the sample resizes a full decode to S x S with Pillow's bicubic filter. This runner resizes the same way from
:func:`functions.images.decode_for_model`'s picture: a JPEG decoded by libjpeg at reduced scale while both sides stay
at least twice S (Pillow's own ``thumbnail`` rule), which halves the CPU of a phone photo and stays within a few of
255 levels of the full decode. The local service's compact domains decode the same way, so its exports agree with it
exactly; against the sample's full decode the probabilities move by about 1e-3 (tests/emulator/test_emu_exports.py).

One onnxruntime session per model and process (keyed by the file's SHA-256), CPU only, with one intra-op thread: the
host runs up to 8 invocations at once on 2 cores, so parallelism comes from invocations, not from inside a run.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from functions import images

__all__ = ["PIXEL_FORMATS", "PIXEL_RANGES", "ExportedModel", "ModelRefused", "load", "sessions_created"]

PIXEL_FORMATS = {"Bgr8": True, "Rgb8": False}  # value: channels reversed (BGR)
PIXEL_RANGES = {"NominalRange_0_255": 255.0, "Normalized_0_1": 1.0}  # value: the top of the range fed
_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
INTRA_OP_THREADS = 1


class ModelRefused(ValueError):
    """The file is not a model this runner can interpret; the message names what was found."""


_sessions: dict[str, Any] = {}
_sessions_lock = threading.Lock()
_created = 0


def sessions_created() -> int:
    """How many onnxruntime sessions this process has built (tests check one per model, not one per image)."""
    return _created


def _session(sha256: str, model_bytes: bytes) -> Any:
    global _created
    with _sessions_lock:
        session = _sessions.get(sha256)
        if session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = INTRA_OP_THREADS
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            try:
                session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
                raise ModelRefused(f"onnxruntime cannot load the model: {exc}") from exc
            _sessions[sha256] = session
            _created += 1
        return session


def _read_labels(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _from_zip(data: bytes) -> tuple[bytes, list[str]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        onnx = [n for n in names if n.lower().endswith(".onnx")]
        labels = [n for n in names if Path(n).name == "labels.txt"]
        if len(onnx) != 1 or len(labels) != 1:
            raise ModelRefused(f"an export zip holds one .onnx model and one labels.txt; found {len(onnx)} .onnx "
                               f"and {len(labels)} labels.txt among {sorted(names)[:10]}")
        return archive.read(onnx[0]), _read_labels(archive.read(labels[0]).decode("utf-8-sig"))


def _batch_of_one(dim: Any) -> bool:
    """A batch dimension of 1, or a symbolic one (some exports name it) that takes 1."""
    return dim == 1 or dim is None or isinstance(dim, str)


def _dims(shape: Any) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True)
class ExportedModel:
    """A loaded, checked export. ``predict`` returns ``[(tag, probability), ...]``, most probable first."""

    sha256: str
    labels: tuple[str, ...]
    size: int
    input_name: str
    output_name: str
    input_type: Any
    bgr: bool
    range_top: float
    source: str = ""
    _session: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, source: str | Path | bytes, labels: str | Path | list[str] | None = None) -> ExportedModel:
        """Read an export zip, or a bare .onnx with ``labels`` (a file, a list, or labels.txt beside the model)."""
        name = "<bytes>"
        if isinstance(source, (str, Path)):
            name = str(source)
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise ModelRefused(f"cannot read the model file {name}: {exc.strerror or exc}") from exc
        else:
            data = bytes(source)
        if zipfile.is_zipfile(io.BytesIO(data)):
            model_bytes, tags = _from_zip(data)
        else:
            model_bytes = data
            if labels is None and isinstance(source, (str, Path)) and (Path(source).parent / "labels.txt").is_file():
                labels = Path(source).parent / "labels.txt"
            if labels is None:
                raise ModelRefused(f"{name} is a bare model with no labels: give labels.txt (one tag a line), or the "
                                   "export zip that holds both")
            tags = list(labels) if isinstance(labels, list) else _read_labels(Path(labels).read_text("utf-8-sig"))
        sha256 = hashlib.sha256(data).hexdigest()
        return cls._checked(sha256, model_bytes, tags, name)

    @classmethod
    def _checked(cls, sha256: str, model_bytes: bytes, tags: list[str], name: str) -> ExportedModel:
        if not tags:
            raise ModelRefused(f"{name}: labels.txt is empty")
        if len(set(tags)) != len(tags):
            raise ModelRefused(f"{name}: labels.txt names a tag twice: {sorted(t for t in set(tags) if tags.count(t) > 1)}")
        session = _session(sha256, model_bytes)
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelRefused(f"{name}: the model has {len(inputs)} inputs "
                               f"({', '.join(f'{i.name} {_dims(i.shape)}' for i in inputs)}); an export has one image "
                               "input [1, 3, S, S]")
        image_input = inputs[0]
        shape = list(image_input.shape)
        square = (len(shape) == 4 and _batch_of_one(shape[0]) and shape[1] == 3 and isinstance(shape[2], int)
                  and shape[2] > 0 and shape[2] == shape[3])
        if not square:
            raise ModelRefused(f"{name}: the input {image_input.name!r} is {_dims(shape)}; an export's image input is "
                               "[1, 3, S, S] (NCHW, square)")
        if image_input.type not in _INPUT_TYPES:
            raise ModelRefused(f"{name}: the input {image_input.name!r} is {image_input.type}; an export's is "
                               "tensor(float) or tensor(float16)")
        output = session.get_outputs()[0]
        out_shape = list(output.shape)
        if not (len(out_shape) == 2 and _batch_of_one(out_shape[0]) and out_shape[1] == len(tags)):
            raise ModelRefused(f"{name}: the first output {output.name!r} is {_dims(out_shape)}; an export's is "
                               f"[1, N] probabilities with N = {len(tags)} labels in labels.txt")
        meta = session.get_modelmeta().custom_metadata_map
        pixel_format = meta.get("Image.BitmapPixelFormat")
        pixel_range = meta.get("Image.NominalPixelRange")
        if pixel_format not in PIXEL_FORMATS:
            raise ModelRefused(f"{name}: metadata Image.BitmapPixelFormat is {pixel_format!r}; this runner feeds "
                               f"{' or '.join(PIXEL_FORMATS)}")
        if pixel_range not in PIXEL_RANGES:
            raise ModelRefused(f"{name}: metadata Image.NominalPixelRange is {pixel_range!r}; this runner feeds "
                               f"{' or '.join(PIXEL_RANGES)}")
        return cls(sha256=sha256, labels=tuple(tags), size=int(shape[2]), input_name=image_input.name,
                   output_name=output.name, input_type=_INPUT_TYPES[image_input.type],
                   bgr=PIXEL_FORMATS[pixel_format], range_top=PIXEL_RANGES[pixel_range], source=name,
                   _session=session)

    def describe(self) -> dict[str, Any]:
        """What a record or a report says about the model that decided."""
        return {"sha256": self.sha256, "labels": list(self.labels), "contract": "custom-vision"}

    def tensor(self, image: Image.Image) -> np.ndarray:
        """The input Microsoft's sample builds from a decoded picture: RGB, the whole image resized to S x S, NCHW,
        channel order and range from the metadata, in the input's float type."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        resized = rgb.resize((self.size, self.size), Image.Resampling.BICUBIC)  # Pillow's default, as the sample
        array = np.asarray(resized, dtype=np.float32)[np.newaxis].transpose(0, 3, 1, 2)
        if self.bgr:
            array = array[:, ::-1, :, :]
        if self.range_top != 255.0:
            array = array * (self.range_top / 255.0)
        return np.ascontiguousarray(array, dtype=self.input_type)

    def predict_image(self, image: Image.Image) -> list[tuple[str, float]]:
        """Probabilities for a decoded image, most probable first."""
        (scores,) = self._session.run([self.output_name], {self.input_name: self.tensor(image)})
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        pairs = [(tag, float(p)) for tag, p in zip(self.labels, values, strict=True)]
        return sorted(pairs, key=lambda pair: -pair[1])

    def predict_checked(self, checked: images.NormalisedImage) -> list[tuple[str, float]]:
        """Probabilities for an image :func:`functions.images.normalise` accepted: from the picture it decoded when
        called with ``model_side=self.size`` (one decode for the check and the model), else from its bytes."""
        if checked.decoded is not None:
            return self.predict_image(checked.decoded)
        return self.predict(checked.data, decode_bytes=checked.decode_bytes)

    def predict(self, image_bytes: bytes, *, decode_bytes: int | None = None) -> list[tuple[str, float]]:
        """Probabilities for an image file's bytes, decoded as :func:`functions.images.decode_for_model` decodes (a
        JPEG at reduced scale, still at least twice the input side), under the app's memory pool (call
        :func:`functions.images.normalise` first, as the app does: it refuses what would not fit, and its
        ``decode_bytes`` spares this a second parse of the file)."""
        if decode_bytes is None:
            plan = images.memory_plan(image_bytes)
            decode_bytes = plan.peak_bytes if isinstance(plan, images.MemoryEstimate) else 0
        with images.reserved(decode_bytes), images.decode_for_model(image_bytes, self.size) as image:
            return self.predict_image(image)


def load(source: str | Path | bytes, labels: str | Path | list[str] | None = None) -> ExportedModel:
    """:meth:`ExportedModel.load`."""
    return ExportedModel.load(source, labels)

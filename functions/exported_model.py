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
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from functions import images

__all__ = [
    "MAX_COMPRESSION_RATIO",
    "MAX_FILE_BYTES",
    "MAX_LABELS_BYTES",
    "MAX_MODEL_BYTES",
    "PIXEL_FORMATS",
    "PIXEL_RANGES",
    "ExportedModel",
    "ModelRefused",
    "export_members",
    "load",
    "read_capped",
    "sessions_created",
]

PIXEL_FORMATS = {"Bgr8": True, "Rgb8": False}  # value: channels reversed (BGR)
PIXEL_RANGES = {"NominalRange_0_255": 255.0, "Normalized_0_1": 1.0}  # value: the top of the range fed
_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_OUTPUT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")
INTRA_OP_THREADS = 1

# What an export zip may cost before it is inflated: one home for the three numbers (docs/limits.md quotes them).
# Custom Vision's compact exports are 2-20 MB of float weights, which deflate compresses by a few per cent; AutoML's
# largest image classifiers export about 350 MB. The cap bounds the memory a zip can take (it is inflated in memory,
# and onnxruntime holds a second copy while it builds the session) within the 2,048 MB instance.
MAX_MODEL_BYTES = 512 * 1024 * 1024
"""Largest model.onnx (inflated) the runner loads; labels.txt may be at most MAX_LABELS_BYTES."""
MAX_LABELS_BYTES = 1024 * 1024
MAX_COMPRESSION_RATIO = 20
"""Largest inflated/compressed ratio of a member above 1 MiB: float weights deflate by a few per cent, so a member
that claims 20:1 is not a model (a 1 MB zip inflating to 1 GiB is 1,000:1)."""
_RATIO_FLOOR = 1024 * 1024
_READ_STEP = 1024 * 1024
MAX_FILE_BYTES = MAX_MODEL_BYTES + MAX_LABELS_BYTES + _RATIO_FLOOR
"""Largest model file (zip or bare .onnx) or blob read at all."""

# The probe at load: a mid-grey picture must get probabilities. A model answering raw scores, integers or booleans
# would otherwise load and route every image by numbers the policy reads as probabilities ("accepted at 7.300").
PROBABILITY_TOLERANCE = 1e-3
"""How far outside [0, 1] a probability may be (float16 rounding) before the model is refused."""
SOFTMAX_SUM_TOLERANCE = 0.01
"""How far from 1 a Multiclass model's probabilities may sum (float16 softmax of a few hundred tags stays within)."""


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


def _bounded_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """A member's bytes, refused past ``cap`` whatever its header declared (a lying header cannot make it bigger).

    Read in 1 MiB steps: ``ZipExtFile.read(n)`` inflates up to ``n`` bytes in one go before it trims to the declared
    size, so one large read would inflate a forged member whole."""
    out = io.BytesIO()
    with archive.open(info) as member:
        while chunk := member.read(_READ_STEP):
            if out.tell() + len(chunk) > cap:
                raise ModelRefused(f"the export zip's {info.filename!r} inflates past {cap:,} bytes although its "
                                   f"header declares {info.file_size:,}: the zip is damaged or forged")
            out.write(chunk)
    return out.getvalue()


def _check_member(info: zipfile.ZipInfo, cap: int) -> None:
    """Refuse a member by its declared sizes before inflating it."""
    if info.file_size > cap:
        raise ModelRefused(f"the export zip's {info.filename!r} is {info.file_size:,} bytes inflated, above the "
                           f"runner's limit of {cap:,}")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_FLOOR and ratio > MAX_COMPRESSION_RATIO:
        raise ModelRefused(f"the export zip's {info.filename!r} inflates {ratio:,.0f}:1 ({info.compress_size:,} to "
                           f"{info.file_size:,} bytes), above {MAX_COMPRESSION_RATIO}:1: a model's weights do not "
                           "compress like that (a zip bomb?)")


def _from_zip(data: bytes) -> tuple[bytes, list[str]]:
    """model.onnx and labels.txt from a Custom Vision export zip (see :func:`export_members`)."""
    model, labels = export_members(data, "labels.txt")
    return model, _read_labels(labels.decode("utf-8-sig"))


def export_members(data: bytes, labels_name: str) -> tuple[bytes, bytes]:
    """(model bytes, labels bytes) of an export zip holding one ``.onnx`` and one ``labels_name`` (``labels.txt``:
    Custom Vision's; ``labels.json``: Azure ML AutoML's), each checked by its declared size and compression ratio
    before it is inflated and read through a bounded reader (see MAX_MODEL_BYTES). One reader for every contract, so
    no model format is a way around the zip checks."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [i for i in archive.infolist() if not i.filename.endswith("/")]
            onnx = [i for i in members if i.filename.lower().endswith(".onnx")]
            labels = [i for i in members if Path(i.filename).name == labels_name]
            if len(onnx) != 1 or len(labels) != 1:
                raise ModelRefused(f"an export zip holds one .onnx model and one {labels_name}; found {len(onnx)} "
                                   f".onnx and {len(labels)} {labels_name} among "
                                   f"{sorted(i.filename for i in members)[:10]}")
            _check_member(onnx[0], MAX_MODEL_BYTES)
            _check_member(labels[0], MAX_LABELS_BYTES)
            text = _bounded_read(archive, labels[0], MAX_LABELS_BYTES)
            return _bounded_read(archive, onnx[0], MAX_MODEL_BYTES), text
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ModelRefused(f"the export zip cannot be read: {exc}") from exc


def read_capped(path: Path, cap: int = MAX_FILE_BYTES, what: str = "a model file") -> bytes:
    """A file's bytes, refused by its size before it is read (a model path may name anything)."""
    try:
        size = path.stat().st_size
        if size > cap:
            raise ModelRefused(f"{path} is {size:,} bytes, above the runner's limit of {cap:,} for {what}")
        return path.read_bytes()
    except OSError as exc:
        raise ModelRefused(f"cannot read the model file {path}: {exc.strerror or exc}") from exc


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
    def load(cls, source: str | Path | bytes, labels: str | Path | list[str] | None = None, *,
             classification: str | None = None) -> ExportedModel:
        """Read an export zip, or a bare .onnx with ``labels`` (a file, a list, or labels.txt beside the model).

        ``classification`` (the policy's ``multiclass`` or ``multilabel``, any case) adds the Multiclass check that the
        probe's probabilities sum to 1 (see :meth:`_probe`)."""
        name = "<bytes>"
        if isinstance(source, (str, Path)):
            name = str(source)
            data = read_capped(Path(source))
        else:
            data = bytes(source)
            if len(data) > MAX_FILE_BYTES:
                raise ModelRefused(f"the model is {len(data):,} bytes, above the runner's limit of {MAX_FILE_BYTES:,}")
        if zipfile.is_zipfile(io.BytesIO(data)):
            model_bytes, tags = _from_zip(data)
        else:
            model_bytes = data
            if labels is None and isinstance(source, (str, Path)) and (Path(source).parent / "labels.txt").is_file():
                labels = Path(source).parent / "labels.txt"
            if labels is None:
                raise ModelRefused(f"{name} is a bare model with no labels: give labels.txt (one tag a line), or the "
                                   "export zip that holds both")
            tags = list(labels) if isinstance(labels, list) else _read_labels(
                read_capped(Path(labels), MAX_LABELS_BYTES, "a labels file").decode("utf-8-sig"))
        sha256 = hashlib.sha256(data).hexdigest()
        model = cls._checked(sha256, model_bytes, tags, name)
        model._probe(classification)
        return model

    def _probe(self, classification: str | None) -> None:
        """Run a mid-grey picture and refuse a model whose answer is not probabilities: every value finite and in
        [0, 1] (within PROBABILITY_TOLERANCE), and for Multiclass a sum of 1 (within SOFTMAX_SUM_TOLERANCE). A
        model that answers NaN for some image at run time still gets that image to review (the policy's
        ``invalid_score``); this catches a model whose every answer would be misread."""
        grey = Image.new("RGB", (self.size, self.size), (128, 128, 128))
        (scores,) = self._session.run([self.output_name], {self.input_name: self.tensor(grey)})
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        shown = ", ".join(f"{v:.4g}" for v in values[:5]) + (", ..." if values.size > 5 else "")
        what = f"{self.source}: on a grey test picture the first output {self.output_name!r} answered [{shown}]"
        if not np.isfinite(values).all():
            raise ModelRefused(f"{what}: not finite numbers; an export's output is probabilities")
        if values.min() < -PROBABILITY_TOLERANCE or values.max() > 1 + PROBABILITY_TOLERANCE:
            raise ModelRefused(f"{what}: values from {values.min():.4g} to {values.max():.4g}, outside [0, 1]; "
                               "an export's output is probabilities (raw scores need a softmax or sigmoid)")
        total = float(values.sum())
        if (classification or "").lower() == "multiclass" and abs(total - 1) > SOFTMAX_SUM_TOLERANCE:
            raise ModelRefused(f"{what}: they sum to {total:.4g}, not 1 (within {SOFTMAX_SUM_TOLERANCE}); a "
                               "Multiclass model's output is a softmax over its tags (is it a Multilabel model?)")

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
        if output.type not in _OUTPUT_TYPES:
            raise ModelRefused(f"{name}: the first output {output.name!r} is {output.type}; an export's is "
                               f"probabilities, {' or '.join(_OUTPUT_TYPES)}")
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

    @property
    def picture(self) -> images.PictureRule:
        """What :func:`functions.images.normalise` takes as ``model_side``: the whole image to size x size, bicubic."""
        return images.PictureRule(self.size)

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
        """Probabilities for an image :func:`functions.images.normalise` accepted: from the picture it made when
        called with ``model_side=self.size`` (within its memory plan, whatever the format), else from its bytes."""
        if checked.decoded is not None:
            return self.predict_image(checked.decoded)
        return self.predict(checked.data, decode_bytes=checked.decode_bytes)

    def predict(self, image_bytes: bytes, *, decode_bytes: int | None = None) -> list[tuple[str, float]]:
        """Probabilities for an image file's bytes, decoded as :func:`functions.images.decode_for_model` decodes (a
        JPEG at reduced scale, still at least twice the input side), under the app's memory pool (call
        :func:`functions.images.normalise` first, as the app does: it refuses what would not fit, and its
        ``decode_bytes`` spares this a second parse of the file)."""
        if decode_bytes is None:
            plan = images.memory_plan(image_bytes, model_side=self.picture)
            decode_bytes = plan.peak_bytes if isinstance(plan, images.MemoryEstimate) else 0
        with images.reserved(decode_bytes), images.decode_for_model(image_bytes, self.picture) as image:
            return self.predict_image(image)


def load(source: str | Path | bytes, labels: str | Path | list[str] | None = None, *,
         classification: str | None = None) -> ExportedModel:
    """:meth:`ExportedModel.load`."""
    return ExportedModel.load(source, labels, classification=classification)

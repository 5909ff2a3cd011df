"""For compact domains the iteration's model IS an ONNX graph: image -> features -> standardise -> linear -> probabilities.

Why: Custom Vision exports compact-domain iterations as ONNX, and an exported model must give the service's answer.
Here that holds by construction: training computes its features by running the graph's feature part with onnxruntime,
fits the classifier's logistic regression on them (`emulator.classifier`), and stores the weights; every prediction of
such an iteration (quick test, published prediction) runs the whole graph, the very bytes an export contains.

The graph follows what Microsoft's export samples (Azure-Samples/customvision-export-samples) rely on: one input
`data` of shape [1, 3, SIDE, SIDE] in the channel order and range the metadata properties `Image.BitmapPixelFormat`
(`Bgr8`) and `Image.NominalPixelRange` (`NominalRange_0_255`) name, and a first output `model_output` [1, N] of
probabilities in tag order (softmax for Multiclass, one sigmoid per tag for Multilabel). Only standard operators
(opset 17), so onnxruntime, or any ONNX runtime, runs it with nothing from this project.

Features (all ONNX operators, 497 numbers, computed on a 2x2-averaged 112x112 copy: about 1 ms per image on one
core): per-cell means and spreads of R, G, B, value, saturation, grey
and two opponent colours on a 4x4 grid (sky on top, sand below); cumulative histograms of those channels; saturated
hue-sector fractions (the six orderings of R, G, B) per cell and overall; and edge energy from fixed Sobel-like
kernels in four directions per cell, their normalised orientation mix, and edge energy at three scales.
Change anything that alters the numbers and bump FEATURE_VERSION.
"""

from __future__ import annotations

import io
import json
import math
import threading
from importlib import resources
from typing import Any

import numpy as np
import onnx
import simplejpeg
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

FEATURE_VERSION = "onnx-compact-2"
SIDE = 224  # input pixels per side
DECODE_GAP = 2.0
"""A JPEG is decoded by libjpeg-turbo at the smallest of its scales M/8 that keeps both sides at least DECODE_GAP x
SIDE (the gap is Pillow's thumbnail default). The service's own copy of the rule cvops' model runner follows
(functions.images.decode_for_model): a stand-in shares no code with its client, and the export tests check the two
agree exactly."""
FEATURES_CACHE_VERSION = f"{FEATURE_VERSION}+decode-m8-gap-2"
"""Cache key of training features: the graph's version and the decode rule (features cached under an older rule are
not reused; models trained under it still run, their graph is unchanged)."""
_WORK = 112  # the features are computed on a 2x2-averaged copy: a quarter of the arithmetic, same information
OPSET = 17
INPUT_NAME = "data"
OUTPUT_NAME = "model_output"
FEATURES_NAME = "features"
PIXEL_FORMAT = "Bgr8"  # channel order of the input, as many Azure exports
PIXEL_RANGE = "NominalRange_0_255"
FLOAT16 = "OnnxFloat16"

_GRID = 4
_HIST_THRESHOLDS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)  # exact in float16
_OPP_THRESHOLDS = (-0.375, -0.25, -0.125, 0.0, 0.125, 0.25, 0.375)
_SAT_GATE = 0.1875
_EDGE_THRESHOLDS = (0.0625, 0.125, 0.25)


def compact_domain_ids() -> frozenset[str]:
    """Ids of the exportable (compact) classification domains, from emulator/data/domains.json."""
    domains = json.loads(resources.files("emulator").joinpath("data/domains.json").read_text(encoding="utf-8"))
    return frozenset(d["id"] for d in domains if d.get("exportable") and d.get("type") == "Classification")


def is_compact(domain_or_iteration: str | dict[str, Any] | Any) -> bool:
    """True for a compact classification domain id, or an iteration (dict or row) trained on one."""
    if isinstance(domain_or_iteration, str):
        domain_id = domain_or_iteration
    else:
        try:
            domain_id = domain_or_iteration["domainId"]
        except (KeyError, IndexError, TypeError):
            domain_id = domain_or_iteration["domain_id"]
    return str(domain_id or "").lower() in compact_domain_ids()


def is_compact_model(stored: dict[str, Any] | None) -> bool:
    """True when a stored model (model.json) was trained on this graph's features."""
    return isinstance(stored, dict) and stored.get("featureVersion") == FEATURE_VERSION


# ----------------------------------------------------------------------------------------------------------------------
# preprocessing (what Microsoft's sample does: RGB, whole image resized to SIDE x SIDE, channel order of the metadata)


def preprocess(image: Image.Image | bytes, *, mirror: bool = False) -> np.ndarray:
    """[1, 3, SIDE, SIDE] float32 in the metadata's channel order and 0-255 range, from a decoded image or its bytes.

    Bytes are decoded as a model runner should (a JPEG at reduced scale, see DECODE_GAP: within a few of 255 levels of
    a full decode, at half its CPU), EXIF orientation applied and any mode converted to RGB the way the service's other
    features do (so a phone portrait is upright), then the whole image resized with Pillow's bicubic filter, as
    Microsoft's sample resizes.
    """
    from .features import _to_rgb, _upright  # the service's one definition of "upright RGB"

    if isinstance(image, bytes | bytearray | memoryview):
        image = _decode(bytes(image))
    img = _to_rgb(_upright(image)).resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    rgb = np.asarray(img, dtype=np.float32)
    if mirror:
        rgb = rgb[:, ::-1]
    if PIXEL_FORMAT == "Bgr8":
        rgb = rgb[..., ::-1]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def _decode(data: bytes) -> Image.Image:
    """An image file's picture by DECODE_GAP's rule: a YCbCr or grey JPEG through simplejpeg (libjpeg-turbo, scaled
    IDCT) with its EXIF block kept for the orientation, another JPEG at Pillow's 1/2, 1/4 or 1/8, anything else whole."""
    image = Image.open(io.BytesIO(data))
    image.seek(0)
    at_least = math.ceil(SIDE * DECODE_GAP)
    if image.format == "JPEG" and image.mode in ("RGB", "L"):
        try:
            pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=at_least, min_height=at_least,
                                            strict=False)
        except ValueError:  # a layout TurboJPEG refuses and libjpeg's own API reads: Pillow's picture, as cvops does
            pixels = None
        if pixels is not None:
            decoded = Image.fromarray(pixels, "RGB")
            if "exif" in image.info:
                decoded.info["exif"] = image.info["exif"]
            return decoded
    if image.format == "JPEG":
        image.draft(image.mode, (at_least, at_least))
    image.load()
    return image


# ----------------------------------------------------------------------------------------------------------------------
# the graph


class _Builder:
    """Nodes and initializers of one graph; constants stored as float16 (Cast to float32 at use) for the flavor."""

    def __init__(self, half: bool) -> None:
        self.half = half
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def const(self, hint: str, value: np.ndarray | float | list, *, dtype: Any = np.float32) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        if self.half and array.dtype == np.float32:
            self.inits.append(numpy_helper.from_array(array.astype(np.float16), name + "_fp16"))
            self.nodes.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT))
        else:
            self.inits.append(numpy_helper.from_array(array, name))
        return name


def _features(b: _Builder, x: str) -> str:
    """Nodes from the image input (float32, [B, 3, SIDE, SIDE]) to the features [B, F]."""
    cell = _WORK // _GRID
    half = b.op("AveragePool", [x], "half", kernel_shape=[SIDE // _WORK] * 2, strides=[SIDE // _WORK] * 2)
    x01 = b.op("Div", [half, b.const("c255", 255.0)], "x01")
    order = [2, 1, 0] if PIXEL_FORMAT == "Bgr8" else [0, 1, 2]
    rgb = b.op("Gather", [x01, b.const("rgb_order", order, dtype=np.int64)], "rgb", axis=1)
    value = b.op("ReduceMax", [rgb], "value", axes=[1], keepdims=1)
    low = b.op("ReduceMin", [rgb], "low", axes=[1], keepdims=1)
    chroma = b.op("Sub", [value, low], "chroma")
    sat = b.op("Div", [chroma, b.op("Add", [value, b.const("eps", 1e-3)])], "sat")
    mix = np.array([[1 / 3, 1 / 3, 1 / 3], [1.0, -1.0, 0.0], [0.5, 0.5, -1.0]], np.float32)[:, :, None, None]
    derived = b.op("Conv", [rgb, b.const("mix", mix)], "derived")  # grey, R-G, (R+G)/2-B
    chans = b.op("Concat", [rgb, value, sat, derived], "chans", axis=1)  # [B, 8, S, S]
    n_chans = 8

    # layout: mean and spread per cell
    pool = {"kernel_shape": [cell, cell], "strides": [cell, cell]}
    means = b.op("AveragePool", [chans], "cell_mean", **pool)
    squares = b.op("AveragePool", [b.op("Mul", [chans, chans])], "cell_sq", **pool)
    var = b.op("Relu", [b.op("Sub", [squares, b.op("Mul", [means, means])])], "cell_var")
    stds = b.op("Sqrt", [b.op("Add", [var, b.const("eps_var", 1e-6)])], "cell_std")

    # cumulative histograms of every channel
    small5 = b.op("Unsqueeze", [chans, b.const("ax2", [2], dtype=np.int64)], "small5")
    thresholds = np.array([_HIST_THRESHOLDS] * 6 + [_OPP_THRESHOLDS] * 2, np.float32)  # opponent ones span [-1, 1]
    assert thresholds.shape[0] == n_chans
    above = b.op("Greater", [small5, b.const("hist_t", thresholds[None, :, :, None, None])], "above")
    hist = b.op("ReduceMean", [b.op("Cast", [above], to=TensorProto.FLOAT)], "hist", axes=[3, 4], keepdims=0)

    # saturated hue sectors: which ordering of R, G, B holds, where the colour is not grey
    r, g, bl = (b.op("Slice", [rgb, b.const("s", [i], dtype=np.int64), b.const("e", [i + 1], dtype=np.int64),
                               b.const("a", [1], dtype=np.int64)], f"ch{i}") for i in range(3))

    def ge(p: str, q: str) -> str:
        return b.op("Cast", [b.op("GreaterOrEqual", [p, q])], to=TensorProto.FLOAT)

    rg, gb, rb = ge(r, g), ge(g, bl), ge(r, bl)
    one = b.const("one", 1.0)
    gr, bg, br = (b.op("Sub", [one, t]) for t in (rg, gb, rb))
    # R>=G>=B, G>R>=B, G>=B>R, B>G>R, B>R>=G, R>=B>G: each pixel in exactly one sector
    sectors = [b.op("Mul", [p, q]) for p, q in ((rg, gb), (gr, rb), (gb, br), (bg, gr), (br, rg), (rb, bg))]
    gate = b.op("Cast", [b.op("Greater", [sat, b.const("sat_gate", _SAT_GATE)])], to=TensorProto.FLOAT)
    hue = b.op("Mul", [b.op("Concat", sectors, axis=1), gate], "hue")  # [B, 6, S, S]
    hue_cells = b.op("AveragePool", [hue], "hue_cells", **pool)
    hue_global = b.op("ReduceMean", [hue], "hue_global", axes=[2, 3], keepdims=0)

    # edges: four directions on grey, per cell, their mix, and energy at three scales
    kernels = np.array([
        [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
        [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
        [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
        [[-2, -1, 0], [-1, 0, 1], [0, 1, 2]],
    ], np.float32)[:, None] / 4.0
    grey = b.op("Slice", [derived, b.const("s", [0], dtype=np.int64), b.const("e", [1], dtype=np.int64),
                          b.const("a", [1], dtype=np.int64)], "grey")
    sobel = b.const("sobel", kernels)
    edges = b.op("Abs", [b.op("Conv", [grey, sobel], pads=[1, 1, 1, 1])], "edges")  # [B, 4, S, S]
    edge_cells = b.op("Sqrt", [b.op("AveragePool", [edges], **pool)], "edge_cells")
    edge_global = b.op("ReduceMean", [edges], "edge_global", axes=[2, 3], keepdims=0)  # [B, 4]
    edge_total = b.op("ReduceSum", [edge_global, b.const("ax1", [1], dtype=np.int64)], keepdims=1)
    edge_mix = b.op("Div", [edge_global, b.op("Add", [edge_total, b.const("eps_e", 1e-6)])], "edge_mix")
    magnitude = b.op("ReduceMax", [edges], "magnitude", axes=[1], keepdims=1)
    strong = b.op("Greater", [b.op("Unsqueeze", [magnitude, b.const("ax2", [2], dtype=np.int64)]),
                              b.const("edge_t", np.array(_EDGE_THRESHOLDS, np.float32)[None, None, :, None, None])])
    strong_frac = b.op("ReduceMean", [b.op("Cast", [strong], to=TensorProto.FLOAT)], "strong", axes=[3, 4], keepdims=0)
    scales = []
    g = grey
    for k in (2, 4):
        g = b.op("AveragePool", [g], f"grey_{k}", kernel_shape=[2, 2], strides=[2, 2])
        e = b.op("Abs", [b.op("Conv", [g, sobel], pads=[1, 1, 1, 1])])
        scales.append(b.op("Sqrt", [b.op("ReduceMean", [e], axes=[2, 3], keepdims=0)], f"scale_{k}"))

    parts = [means, stds, hist, hue_cells, hue_global, edge_cells, b.op("Sqrt", [edge_global]), edge_mix, strong_frac,
             *scales]
    flat = [b.op("Flatten", [p], axis=1) for p in parts]
    return b.op("Concat", flat, FEATURES_NAME, axis=1)


FEATURE_DIM = (8 * _GRID * _GRID * 2 + 8 * len(_HIST_THRESHOLDS) + 6 * _GRID * _GRID + 6 + 4 * _GRID * _GRID + 4 + 4
               + len(_EDGE_THRESHOLDS) + 4 + 4)


def _graph(b: _Builder, features: str, batch: str | int, outputs: list[onnx.ValueInfoProto], input_type: int,
           name: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        b.nodes, name, [helper.make_tensor_value_info(INPUT_NAME, input_type, [batch, 3, SIDE, SIDE])], outputs,
        initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cvops-emulator")
    model.ir_version = 8  # onnxruntime from 1.12 on reads it
    for key, value in (("Image.BitmapPixelFormat", PIXEL_FORMAT), ("Image.NominalPixelRange", PIXEL_RANGE),
                       ("Image.ColorSpaceGamma", "SRGB")):
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    return model


def feature_proto() -> onnx.ModelProto:
    """The feature part alone, batch of any size: [B, 3, SIDE, SIDE] float32 -> features [B, FEATURE_DIM]."""
    b = _Builder(half=False)
    out = _features(b, INPUT_NAME)
    return _graph(b, out, "batch", [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", FEATURE_DIM])],
                  TensorProto.FLOAT, "cvops_compact_features")


def labels(stored: dict[str, Any]) -> list[str]:
    """The tag names in output order (what labels.txt lists, one a line)."""
    return [str(name) for name in stored.get("labels", [])]


def model_proto(stored: dict[str, Any], *, flavor: str | None = None) -> onnx.ModelProto:
    """The whole model of a stored compact iteration (model.json); flavor "OnnxFloat16" makes input, weights and
    output float16 (the arithmetic inside still runs in float32 after a Cast, so answers move by weight rounding only).
    """
    if flavor not in (None, "", FLOAT16):
        raise ValueError(f"flavor {flavor!r} is not one this service exports; use none or {FLOAT16}")
    if not is_compact_model(stored):
        raise ValueError(f"not a compact-domain model: featureVersion {stored.get('featureVersion')!r}, "
                         f"expected {FEATURE_VERSION!r}")
    half = flavor == FLOAT16
    mean = np.asarray(stored["mean"], np.float32)
    scale = np.asarray(stored["scale"], np.float32)
    coef = np.asarray(stored["coef"], np.float32)
    intercept = np.asarray(stored["intercept"], np.float32)
    if mean.shape != (FEATURE_DIM,) or coef.shape[1:] != (FEATURE_DIM,):
        raise ValueError(f"stored model has {mean.shape} / {coef.shape} weights; this graph makes {FEATURE_DIM} "
                         "features. Train a new iteration.")
    n_tags = coef.shape[0]
    b = _Builder(half=half)
    x = INPUT_NAME
    if half:
        x = b.op("Cast", [INPUT_NAME], "data_f32", to=TensorProto.FLOAT)
    features = _features(b, x)
    standard = b.op("Div", [b.op("Sub", [features, b.const("mean", mean)]), b.const("scale", scale)], "standard")
    logits = b.op("Add", [b.op("MatMul", [standard, b.const("coef_t", coef.T.copy())]), b.const("intercept", intercept)],
                  "logits")
    if stored.get("classificationType") == "Multilabel":
        probs = b.op("Sigmoid", [logits], "probabilities")
    else:
        probs = b.op("Softmax", [logits], "probabilities", axis=1)
    b.nodes.append(helper.make_node("Cast" if half else "Identity", [probs], [OUTPUT_NAME],
                                    **({"to": TensorProto.FLOAT16} if half else {})))
    elem = TensorProto.FLOAT16 if half else TensorProto.FLOAT
    model = _graph(b, probs, 1, [helper.make_tensor_value_info(OUTPUT_NAME, elem, [1, n_tags])], elem,
                   "cvops_compact_classifier")
    model.doc_string = "Labels in output order: " + json.dumps(labels(stored))
    return model


def model_bytes(stored: dict[str, Any], *, flavor: str | None = None) -> bytes:
    """`model_proto` serialised: the model.onnx of an export."""
    return model_proto(stored, flavor=flavor).SerializeToString()


# ----------------------------------------------------------------------------------------------------------------------
# running it


def _session(data: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the machine is shared; images come one at a time
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


_feature_session = None
_feature_lock = threading.Lock()


def features_of_batch(pixels: np.ndarray, *, batch: int = 16) -> np.ndarray:
    """Features [N, FEATURE_DIM] of preprocessed images [N, 3, SIDE, SIDE], run by onnxruntime on the feature graph:
    training sees exactly the numbers the whole graph computes when it predicts."""
    global _feature_session
    with _feature_lock:
        if _feature_session is None:
            _feature_session = _session(feature_proto().SerializeToString())
        session = _feature_session
    pixels = np.asarray(pixels, np.float32)
    out = [session.run(None, {INPUT_NAME: pixels[i:i + batch]})[0] for i in range(0, len(pixels), batch)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, FEATURE_DIM), np.float32)


def training_model_json(model_json: dict[str, Any], tag_names: list[str]) -> dict[str, Any]:
    """A fitted classifier's JSON marked as this graph's (feature version, input contract, labels)."""
    return {**model_json, "featureVersion": FEATURE_VERSION, "labels": list(tag_names),
            "input": {"name": INPUT_NAME, "side": SIDE, "pixelFormat": PIXEL_FORMAT, "pixelRange": PIXEL_RANGE}}


class CompactPredictor:
    """A compact iteration's whole graph in one onnxruntime session (made once per iteration and cached)."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored
        self._session = _session(model_bytes(stored))  # onnxruntime's run is thread-safe: no lock around it

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0])[0]

    def predict_image(self, image: Image.Image | bytes) -> np.ndarray:
        """Probabilities [N] of one image in tag order."""
        return self.predict_pixels(preprocess(image))


__all__ = [
    "FEATURE_DIM", "FEATURE_VERSION", "FLOAT16", "INPUT_NAME", "OUTPUT_NAME", "PIXEL_FORMAT", "PIXEL_RANGE", "SIDE",
    "CompactPredictor", "compact_domain_ids", "feature_proto", "features_of_batch", "is_compact", "is_compact_model",
    "labels", "model_bytes", "model_proto", "preprocess", "training_model_json",
]

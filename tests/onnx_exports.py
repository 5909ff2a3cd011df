"""Build small ONNX models in Custom Vision's export format (a zip with model.onnx and labels.txt), for the runner's
tests: the graph averages each input channel, so a pure-red image scores the first input channel, and the answer
shows which channel order and range the runner fed.

Graph: X [1, 3, S, S] -> ReduceMean over H, W -> [1, 3] -> Softmax -> [1, 3] probabilities, labels red/green/blue in
input-channel order. With ``Rgb8`` a red image is "red"; with ``Bgr8`` (channel 0 is blue) the same image is "blue".
With ``NominalRange_0_255`` a pure colour's softmax is ~1.0; with ``Normalized_0_1`` it is e / (e + 2) = 0.576.

Out-of-contract variants for the load-time probe: ``activation="none"`` answers the raw channel means (128 for the
probe's grey), ``"sigmoid"`` answers values in [0, 1] that do not sum to 1, ``output_type`` casts the answer to int64
or bool, and ``special`` (NaN, +-inf) is answered for every tag of a picture with no red at all (the grey probe has
red, so such a model loads and answers the special value at run time only).
"""

from __future__ import annotations

import io
import zipfile

import onnx
from onnx import TensorProto, helper

LABELS = ("red", "green", "blue")


def build_onnx(*, size: int = 8, pixel_format: str | None = "Rgb8", pixel_range: str | None = "NominalRange_0_255",
               float16: bool = False, input_shape: list | None = None, outputs: int = 3,
               extra_input: bool = False, activation: str = "softmax", output_type: int | None = None,
               special: float | None = None) -> bytes:
    """The model's bytes; the keyword arguments break one part of the contract at a time for the refusal tests."""
    elem = TensorProto.FLOAT16 if float16 else TensorProto.FLOAT
    shape = input_shape if input_shape is not None else [1, 3, size, size]
    inputs = [helper.make_tensor_value_info("data", elem, shape)]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("mask", elem, [1, 1]))
    nodes = [helper.make_node("ReduceMean", ["data"], ["means"], axes=[2, 3], keepdims=0)]
    if outputs != 3:  # a different number of classes: repeat the means
        nodes.append(helper.make_node("Concat", ["means"] * ((outputs + 2) // 3), ["many"], axis=1))
        starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
        ends = helper.make_tensor("ends", TensorProto.INT64, [1], [outputs])
        axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
        nodes.append(helper.make_node("Slice", ["many", "starts", "ends", "axes"], ["scores"]))
        initializers = [starts, ends, axes]
    else:
        nodes.append(helper.make_node("Identity", ["means"], ["scores"]))
        initializers = []
    if activation == "softmax":
        nodes.append(helper.make_node("Softmax", ["scores"], ["probs"], axis=1))
    else:
        nodes.append(helper.make_node({"sigmoid": "Sigmoid", "none": "Identity"}[activation], ["scores"], ["probs"]))
    last = "probs"
    if special is not None:  # every tag answers `special` when the picture's red channel is all 0
        initializers += [helper.make_tensor("red_index", TensorProto.INT64, [], [0]),
                         helper.make_tensor("zero", elem, [1], [0.0]),
                         helper.make_tensor("special", elem, [1], [special])]
        nodes += [helper.make_node("Gather", ["means", "red_index"], ["red"], axis=1),
                  helper.make_node("Equal", ["red", "zero"], ["no_red"]),
                  helper.make_node("Where", ["no_red", "special", "probs"], ["answered"])]
        last = "answered"
    out_elem = elem if output_type is None else output_type
    if output_type is not None:
        nodes.append(helper.make_node("Cast", [last], ["cast"], to=output_type))
        last = "cast"
    nodes.append(helper.make_node("Identity", [last], ["model_output"]))
    graph = helper.make_graph(nodes, "cvops-test-export", inputs,
                              [helper.make_tensor_value_info("model_output", out_elem, [1, outputs])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    props = {}
    if pixel_format is not None:
        props["Image.BitmapPixelFormat"] = pixel_format
    if pixel_range is not None:
        props["Image.NominalPixelRange"] = pixel_range
    props["Image.ColorSpaceGamma"] = "SRGB"
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_zip(labels: tuple[str, ...] | list[str] = LABELS, **kwargs) -> bytes:
    """An export zip as Custom Vision's download holds it: model.onnx, labels.txt (one tag a line)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.onnx", build_onnx(**kwargs))
        archive.writestr("labels.txt", "\n".join(labels) + "\n")
    return buffer.getvalue()


def solid_jpeg(color: tuple[int, int, int], size: int = 64, fmt: str = "PNG") -> bytes:
    """A one-colour image (PNG by default: a JPEG's chroma would blur the pure colour)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, fmt)
    return buffer.getvalue()

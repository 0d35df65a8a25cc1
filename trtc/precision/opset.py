"""Raising a model's opset for Q/DQ: per-channel DequantizeLinear needs opset 13, FP8 and FP16
scales need 19. Raising the number alone breaks models whose ops changed signature on the way
(Unsqueeze and ReduceMean take axes as inputs from 13 and 18; seen on PP-OCRv4 rec and ddddocr,
which onnxruntime then refused to load), so ONNX's version converter rewrites them."""

from __future__ import annotations

import onnx
from onnx import version_converter

from trtc.errors import BuildError
from trtc.graph.io import name_unnamed_nodes
from trtc.graph.weights import SplitModel, split_weights


def default_opset(model: onnx.ModelProto) -> int:
    return next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), 1)


def with_opset(model: onnx.ModelProto, minimum: int) -> onnx.ModelProto:
    """`model` itself when its opset is high enough, else a converted copy (the nodes the
    converter adds, such as Constants for axes, get stable generated names)."""
    current = default_opset(model)
    if current >= minimum:
        return model
    # The converter copies the model through its own IR and back: the large weights (which no
    # adapter reads; axes, scales and shapes are small and stay in) wait outside, and come back
    # into the converted graph once (ResNet-50-shaped model: 1.05 s -> 0.06 s of CPU to convert).
    split = split_weights(model)
    try:
        structure = version_converter.convert_version(onnx.load_from_string(split.structure), minimum)
    except Exception as exc:  # noqa: BLE001 - the converter raises plain RuntimeErrors
        raise BuildError(
            f"precision: Q/DQ needs opset {minimum} and ONNX's converter cannot raise this model from opset {current}: "
            f"{str(exc).splitlines()[0][:200]}; export the model at opset {minimum} or later"
        ) from None
    converted = SplitModel(structure.SerializeToString(), split.weights, split.types).joined()
    name_unnamed_nodes(converted.graph)
    return converted

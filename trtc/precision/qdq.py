"""Q/DQ placement that TensorRT fuses into INT8/FP8 kernels.

- Quantized layers: Conv, ConvTranspose, Gemm and MatMul with constant weights, except GEMMs
  whose K or N is below 16 (too small to gain), what `precision.keep_fp32` names, and ops the
  backend builds no INT8 kernel for (`NO_INT8_KERNEL`: their Q/DQ would only add error).
- Weights: symmetric, per output channel (axis 0 for Conv and for Gemm with transB, axis 1 for
  ConvTranspose, MatMul and Gemm without transB), zero point 0; stored already quantized (INT8)
  or as FP32 behind a QuantizeLinear (FP8), followed by a DequantizeLinear.
- Activations: symmetric, per tensor, zero point 0, at the data input of each quantized layer.
- Residual Adds: the input that does not come straight from a quantized layer gets a Q/DQ, the
  one that does gets none, so TensorRT can fuse the Add into that layer's epilogue.
Everything else stays in the fallback precision.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

from trtc.graph.graph_index import GraphIndex, attributes
from trtc.precision.equalize import channel_scales, layer_weight_scaled
from trtc.precision.opset import with_opset

QUANTIZED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
MIN_GEMM_DIM = 16
# Measured: TensorRT-RTX 1.7 runs a ConvTranspose between Q/DQ as a Half (FP16 fallback) or Float
# deconvolution, whatever the weights' quantization axis (PP-OCRv4 det's two upsampling layers,
# 2.9% of its FLOPs), so the INT8 rounding costs accuracy and gains nothing.
NO_INT8_KERNEL = {
    "tensorrt-rtx": {
        "ConvTranspose": "TensorRT-RTX builds no INT8 deconvolution: it would run in the fallback precision "
        "with the INT8 rounding error"
    }
}
FORMATS = {"int8": (TensorProto.INT8, 127.0), "fp8": (TensorProto.FLOAT8E4M3FN, 448.0)}


@dataclass
class QuantPlan:
    layers: list[str] = field(default_factory=list)
    activations: list[str] = field(default_factory=list)  # tensors that need a calibrated range
    residuals: list[str] = field(default_factory=list)  # Add inputs quantized for epilogue fusion
    residual_adds: list[str] = field(default_factory=list)  # the Adds that read them through Q/DQ
    skipped: dict[str, str] = field(default_factory=dict)  # layer -> why it is not quantized


def plan_quantization(
    model: onnx.ModelProto, keep_fp32: tuple[str, ...] = (), exclude: frozenset[str] = frozenset(), backend: str = ""
) -> QuantPlan:
    """`backend`: the TensorRT package that builds ("tensorrt-rtx", "tensorrt"); ops it has no INT8
    kernel for are not quantized."""
    index = GraphIndex(model.graph)
    plan = QuantPlan()
    unsupported = NO_INT8_KERNEL.get(backend, {})
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OPS or node.domain:
            continue
        why = unsupported.get(node.op_type) or _skip_reason(node, index, keep_fp32, exclude)
        if why:
            plan.skipped[node.name] = why
            continue
        plan.layers.append(node.name)
        if node.input[0] not in plan.activations:
            plan.activations.append(node.input[0])
    quantized_outputs = {out for node in model.graph.node if node.name in plan.layers for out in node.output}
    for node in model.graph.node:
        if node.op_type == "Add" and len(node.input) == 2 and all(index.constant(x) is None for x in node.input):
            direct = [x in quantized_outputs for x in node.input]
            if direct.count(True) == 1:
                residual = node.input[direct.index(False)]
                if residual not in plan.activations:
                    plan.activations.append(residual)
                if residual not in plan.residuals:
                    plan.residuals.append(residual)
                plan.residual_adds.append(node.name)
    return plan


def near_outputs(model: onnx.ModelProto, layers: list[str], hops: int) -> list[str]:
    """Inputs of the quantized layers from which a model output is reached through at most
    `hops` further quantized layers. Their rare large values carry the result (a detection's
    class score, the winning logit), so a clipping range method must not cut them; earlier
    layers' clipped tails are averaged away by the layers after them."""
    if hops < 0:
        return []
    index = GraphIndex(model.graph)
    planned = set(layers)
    found = []
    for node in model.graph.node:
        if node.name in planned and node.input[0] not in found and _reaches_output(node, index, planned, hops):
            found.append(node.input[0])
    return found


def _reaches_output(start: onnx.NodeProto, index: GraphIndex, planned: set[str], hops: int) -> bool:
    pending, seen = [(name, hops) for name in start.output], set()
    while pending:
        tensor, left = pending.pop()
        if tensor in index.graph_outputs:
            return True
        if (tensor, left) in seen:
            continue
        seen.add((tensor, left))
        for reader in index.consumers.get(tensor, []):
            remaining = left - 1 if reader.name in planned else left
            if remaining >= 0:
                pending.extend((name, remaining) for name in reader.output)
    return False


def fallback_residuals(model: onnx.ModelProto, plan: QuantPlan) -> list[str]:
    """Tensors that become residual inputs (and need a range) once some of `plan`'s layers are
    kept back: the operands of Adds that read a quantized layer's output, e.g. both sides of
    conv_a(x) + conv_b(x), which has no residual Q/DQ until one convolution returns to float."""
    quantized_outputs = {out for node in model.graph.node if node.name in plan.layers for out in node.output}
    index = GraphIndex(model.graph)
    found: list[str] = []
    for node in model.graph.node:
        if node.op_type == "Add" and len(node.input) == 2 and any(x in quantized_outputs for x in node.input):
            found += [
                x for x in node.input if index.constant(x) is None and x not in plan.activations and x not in found
            ]
    return found


def _skip_reason(node: onnx.NodeProto, index: GraphIndex, keep_fp32, exclude) -> str | None:
    for pattern in keep_fp32:
        if fnmatch.fnmatchcase(node.name, pattern) or fnmatch.fnmatchcase(node.op_type, pattern):
            return f"precision.keep_fp32: {pattern}"
    if node.name in exclude:
        return "returned to fallback precision by auto_fallback"
    weight = index.constant(node.input[1]) if len(node.input) > 1 else None
    if weight is None or not np.issubdtype(weight.dtype, np.floating):
        return "weights are not constant"
    if node.op_type in ("Gemm", "MatMul") and (weight.ndim != 2 or min(weight.shape) < MIN_GEMM_DIM):
        return f"GEMM too small to gain from quantization (weights {list(weight.shape)})"
    return None


# Q/DQ scales are converted with the data when the fallback is FP16 (opset 19): a scale below
# FP16's smallest (subnormal) value becomes 0, and TensorRT refuses a zero scale ("Scale
# coefficients must all be positive"; seen on PP-OCRv4 det, whose weights have near-empty
# channels). A floor at the smallest normal value (2**-14) built too, but coarsened small weights.
FP16_SMALLEST = 2.0**-24


def quant_scale(amax: np.ndarray | float, qmax: float, floor: float) -> np.ndarray:
    """amax / qmax, at least `floor`; an all-zero tensor or channel gets 1 (any scale is exact)."""
    amax = np.asarray(amax, np.float64)
    return np.where(amax > 0, np.maximum(amax / qmax, floor), 1.0).astype(np.float32)


def insert_qdq(
    model: onnx.ModelProto,
    plan: QuantPlan,
    ranges: dict[str, float],
    mode: str,
    scale_floor: float = 0.0,
    channel_ranges: dict[str, list[float]] | None = None,
    bias_shifts: dict[str, list[float]] | None = None,
    strengths: dict[str, float] | None = None,
) -> onnx.ModelProto:
    """A copy of `model` with Q/DQ pairs on the planned activations and quantized weights.
    `scale_floor`: the smallest scale the fallback precision can hold (FP16_SMALLEST for FP16).
    `channel_ranges`: per-channel ranges of the inputs to divide per channel, their readers'
    weights taking the factor back: depthwise convolutions' inputs (equalize.py) and migrated
    inputs of dense layers (migrate.py), at `strengths` (1 when not given).
    `bias_shifts`: per layer, what quantization adds to each output channel (bias_correction.py)."""
    converted = with_opset(model, 19 if mode == "fp8" else 13)
    quantized = onnx.ModelProto()
    quantized.CopyFrom(converted)
    graph = quantized.graph
    qtype, qmax = FORMATS[mode]
    index = GraphIndex(graph)
    new_nodes: dict[str, list[onnx.NodeProto]] = {}  # consumer node name -> nodes to put before it
    activation_dq: dict[str, str] = {}
    equalized = {
        t: channel_scales(c, ranges.get(t, 0.0), (strengths or {}).get(t, 1.0))
        for t, c in (channel_ranges or {}).items()
        if t in plan.activations
    }
    for tensor in plan.activations:
        before = new_nodes.setdefault(_first_reader(graph, tensor), [])
        source = (
            _equalized(tensor, equalized[tensor], index, before, set(plan.layers)) if tensor in equalized else tensor
        )
        scale = index.add_initializer(f"{tensor}/scale", quant_scale(ranges.get(tensor, 0.0), qmax, scale_floor))
        zero = _zero_point(index, f"{tensor}/zero", qtype, ())
        q = helper.make_node("QuantizeLinear", [source, scale, zero], [f"{tensor}/q"], name=f"{tensor}/quantize")
        dq = helper.make_node(
            "DequantizeLinear", [f"{tensor}/q", scale, zero], [f"{tensor}/dq"], name=f"{tensor}/dequantize"
        )
        activation_dq[tensor] = dq.output[0]
        before.extend([q, dq])
    residual_readers, residual_adds = set(plan.residuals), set(plan.residual_adds)
    for node in graph.node:
        if node.name in plan.layers:
            weight_scales = equalized.get(node.input[0])
            node.input[0] = activation_dq.get(node.input[0], node.input[0])
            node.input[1] = _quantized_weight(
                node, index, qtype, qmax, scale_floor, new_nodes.setdefault(node.name, []), weight_scales
            )
            if node.name in (bias_shifts or {}):
                _correct_bias(node, index, np.asarray(bias_shifts[node.name]))
        elif node.name in residual_adds:  # only where TensorRT fuses the Add into the convolution's epilogue
            node.input[:] = [activation_dq[x] if x in residual_readers else x for x in node.input]
    ordered = []
    for node in graph.node:
        ordered.extend(new_nodes.get(node.name, []))
        ordered.append(node)
    copies = [_copy(node) for node in ordered]
    del graph.node[:]
    graph.node.extend(copies)
    return quantized


def _equalized(tensor: str, scales: np.ndarray, index: GraphIndex, before: list, planned: set[str]) -> str:
    """`tensor` divided per channel by `scales` (axis 1; the last for MatMul), for its quantized readers."""
    reader = next(n for n in index.consumers[tensor] if n.name in planned and n.input[0] == tensor)
    rank = index.constant(reader.input[1]).ndim
    shape = [-1] if reader.op_type == "MatMul" else [1, -1] + [1] * (rank - 2)
    inverse = index.add_initializer(f"{tensor}/equalize", (1.0 / scales).reshape(shape))
    output = index.unique(f"{tensor}/equalized")
    before.append(helper.make_node("Mul", [tensor, inverse], [output], name=index.unique(f"{tensor}/equalize")))
    return output


def _quantized_weight(
    node: onnx.NodeProto,
    index: GraphIndex,
    qtype: int,
    qmax: float,
    scale_floor: float,
    before: list,
    input_scales: np.ndarray | None = None,
) -> str:
    weight = index.constant(node.input[1]).astype(np.float32)
    source = node.input[1]
    if input_scales is not None:  # the input was divided per channel: the weights take the factor back
        weight = layer_weight_scaled(node, weight, input_scales)
        source = index.add_initializer(f"{node.name}.weight/equalized", weight) if qtype != TensorProto.INT8 else source
    axis, shaped = weight_scale(node, weight, qmax, scale_floor)
    scale = shaped.reshape(-1)
    scale_name = index.add_initializer(f"{node.name}.weight/scale", scale)
    zero_name = _zero_point(index, f"{node.name}.weight/zero", qtype, scale.shape)
    if qtype == TensorProto.INT8:
        stored = index.add_initializer(
            f"{node.name}.weight/int8", np.clip(np.rint(weight / shaped), -127, 127).astype(np.int8)
        )
    else:  # FP8: keep FP32 weights behind a QuantizeLinear that TensorRT folds
        stored = index.unique(f"{node.name}.weight/fp8")
        before.append(
            helper.make_node(
                "QuantizeLinear",
                [source, scale_name, zero_name],
                [stored],
                name=f"{node.name}.weight/quantize",
                axis=axis,
            )
        )
    dequantized = index.unique(f"{node.name}.weight/dq")
    before.append(
        helper.make_node(
            "DequantizeLinear",
            [stored, scale_name, zero_name],
            [dequantized],
            name=f"{node.name}.weight/dequantize",
            axis=axis,
        )
    )
    return dequantized


def _correct_bias(node: onnx.NodeProto, index: GraphIndex, shift: np.ndarray) -> None:
    bias = index.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(len(shift), np.float32)
    corrected = index.add_initializer(f"{node.name}.bias/corrected", (bias - shift).astype(np.float32))
    if len(node.input) > 2:
        node.input[2] = corrected
    else:
        node.input.append(corrected)


def weight_scale(node: onnx.NodeProto, weight: np.ndarray, qmax: float, scale_floor: float) -> tuple[int, np.ndarray]:
    """The per-output-channel axis of `node`'s weights and their scales, shaped to broadcast."""
    attrs = attributes(node)
    axis = (
        1
        if node.op_type in ("ConvTranspose", "MatMul") or (node.op_type == "Gemm" and not attrs.get("transB", 0))
        else 0
    )
    reduce_axes = tuple(a for a in range(weight.ndim) if a != axis)
    scale = quant_scale(np.abs(weight).max(axis=reduce_axes), qmax, scale_floor)
    return axis, scale.reshape([-1 if a == axis else 1 for a in range(weight.ndim)])


def dequantized_weight(node: onnx.NodeProto, weight: np.ndarray, qmax: float, scale_floor: float) -> np.ndarray:
    """`node`'s FP32 weights as their INT8 Q/DQ pair gives them back: per output channel, rounded
    to the nearest of +-qmax levels of `weight_scale`."""
    _, scale = weight_scale(node, weight, qmax, scale_floor)
    return (np.clip(np.rint(weight / scale), -qmax, qmax) * scale).astype(np.float32)


def _zero_point(index: GraphIndex, name: str, qtype: int, shape) -> str:
    """Zero points are 0 (symmetric); built as a TensorProto since numpy has no FP8."""
    name = index.unique(name)
    count = int(np.prod(shape)) if shape else 1
    tensor = helper.make_tensor(name, qtype, list(shape), [0] * count)
    index.graph.initializer.append(tensor)
    index.initializers[name] = tensor
    return name


def _first_reader(graph: onnx.GraphProto, tensor: str) -> str:
    return next(node.name for node in graph.node if tensor in node.input)


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy

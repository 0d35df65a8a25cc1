"""Depthwise input equalization: one activation range for every channel of a depthwise
convolution's input.

An activation gets one INT8 scale for all its channels (TensorRT's INT8 convolutions take a
per-tensor input scale), but the channels feeding a depthwise convolution often differ by 10x or
more in range (MobileNetV3: largest channel 12.5, median 1.1), and each output channel of a
depthwise convolution sees only its own input channel: a quiet channel keeps a handful of levels
and its output is mostly rounding noise. So the input is divided per channel by
s_c = range_c / range (a Mul before the QuantizeLinear, which TensorRT runs in the producer's
epilogue) and the convolution's weights of channel c are multiplied by s_c, which computes the
same in FP32. Depthwise weights are quantized per output channel, so the scaled weights lose
nothing; the input now uses the whole INT8 range in every channel.

Measured (benchmarks/real_int8.py, FP32 fallback, minmax): MobileNetV3 top-1 agreement
0.594 -> 0.922, PP-OCRv4 det text-map IoU 0.650 -> 0.850.
"""

from __future__ import annotations

import numpy as np
import onnx

from trtc.graph.graph_index import GraphIndex, attributes

MAX_BOOST = 256.0  # a quiet (or dead) channel is scaled up at most this much


def depthwise_inputs(
    model: onnx.ModelProto, layers: list[str], residuals: list[str], activations: list[str]
) -> list[str]:
    """The planned activations that only quantized depthwise convolutions read through Q/DQ."""
    index = GraphIndex(model.graph)
    planned = set(layers)
    found = []
    for tensor in activations:
        readers = [node for node in index.consumers.get(tensor, []) if node.name in planned and node.input[0] == tensor]
        if readers and tensor not in residuals and all(is_depthwise(node, index) for node in readers):
            found.append(tensor)
    return found


def is_depthwise(node: onnx.NodeProto, index: GraphIndex) -> bool:
    """A Conv whose every group reads one input channel (group = input channels)."""
    if node.op_type != "Conv" or node.domain:
        return False
    weight = index.constant(node.input[1])
    return weight is not None and is_depthwise_weight(node, weight)


def channel_scales(channel_amax: list[float], amax: float, strength: float = 1.0) -> np.ndarray:
    """s_c = (range_c / range) ** strength, at most 1 (a channel above the clip threshold stays as
    it is) and at least 1 / MAX_BOOST ** strength. Strength 1 lifts every channel to the full
    range; migrate.py uses less for dense layers."""
    ranges = np.asarray(channel_amax, np.float64)
    if amax <= 0:
        return np.ones(len(ranges), np.float32)
    return (np.clip(ranges / amax, 1.0 / MAX_BOOST, 1.0) ** strength).astype(np.float32)


def scaled_weight(weight: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Depthwise weights [channels * multiplier, 1, ...]: output channel o reads input channel
    o // multiplier, so its weights take that channel's scale."""
    multiplier = weight.shape[0] // len(scales)
    per_output = np.repeat(scales, multiplier).reshape([-1] + [1] * (weight.ndim - 1))
    return (weight * per_output).astype(weight.dtype)


def layer_weight_scaled(node: onnx.NodeProto, weight: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The weights of `node` taking back the factor `scales` its input was divided by per channel:
    a depthwise Conv per output channel (scaled_weight), a dense Conv along its input-channel axis
    (1), Gemm along K (axis 1 with transB, else 0), MatMul along its rows (axis 0)."""
    if is_depthwise_weight(node, weight):
        return scaled_weight(weight, scales)
    if node.op_type == "Conv" or (node.op_type == "Gemm" and attributes(node).get("transB", 0)):
        axis = 1
    else:
        axis = 0
    shape = [-1 if a == axis else 1 for a in range(weight.ndim)]
    return (weight * scales.reshape(shape)).astype(weight.dtype)


def is_depthwise_weight(node: onnx.NodeProto, weight: np.ndarray) -> bool:
    return node.op_type == "Conv" and attributes(node).get("group", 1) > 1 and weight.ndim >= 3 and weight.shape[1] == 1


def equalized_section(
    model: onnx.ModelProto, layers: list[str], ranges: dict[str, float], channel_ranges: dict[str, list[float]]
) -> dict:
    """For the report, per depthwise layer: the input it reads equalized and the largest factor
    a channel was scaled up by."""
    planned = set(layers)
    section = {}
    for node in model.graph.node:
        if node.name in planned and node.input[0] in channel_ranges:
            scales = channel_scales(channel_ranges[node.input[0]], ranges.get(node.input[0], 0.0))
            section[node.name] = {
                "input": node.input[0],
                "channels": len(scales),
                "largest_boost": round(float(1.0 / scales.min()), 2),
            }
    return section

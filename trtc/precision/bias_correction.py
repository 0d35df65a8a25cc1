"""Bias correction: take the mean error that quantization adds to each convolution's output
channel back out of its bias.

Rounding is not zero-mean on real activations: SiLU's negative half (-0.28..0) rounds to 0 under
a step of ~0.9 (YOLOv8n's early layers), a per-channel weight scale rounds small weights the same
way everywhere. Each such layer then shifts its output channels by a constant that later layers
amplify. The shift is local and measurable: with x the FP32 input a layer sees on the calibration
data, it is the per-channel mean of conv(Q(x), Q(w)) - conv(x, w). One more FP32 pass over the
calibration samples gives each layer's x; a probe graph of every corrected convolution, twice
(as quantized and as FP32, with the layer's own strides, pads and groups, so borders count
exactly), gives the means in onnxruntime.

Measured (benchmarks/real_int8.py, FP32 fallback, minmax, depthwise inputs equalized): YOLOv8n
detection F1 0.839 -> 0.930, PP-OCRv4 det text-map IoU 0.809 -> 0.819, MobileNetV3 unchanged (0.938).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtc.graph.graph_index import GraphIndex
from trtc.graph.reference import Reference, with_outputs
from trtc.precision.equalize import channel_scales, layer_weight_scaled
from trtc.precision.qdq import quant_scale, weight_scale

# The mean shift of a channel settles within a few samples (each gives H x W positions), and each
# sample costs a full FP32 pass and a probe: on a ResNet-50-shaped model with 48 samples, bias
# correction took 2.5x the calibration itself.
SAMPLES = 32


def bias_shifts(
    model: onnx.ModelProto,
    layers: list[str],
    ranges: dict[str, float],
    channel_ranges: dict[str, list[float]],
    batches: Iterable[dict[str, np.ndarray]],
    scale_floor: float,
    qmax: float = 127.0,
    strengths: dict[str, float] | None = None,
) -> dict[str, list[float]]:
    """Per quantized Conv in `layers`, the mean shift of each output channel that INT8 Q/DQ of
    its input (at `ranges`, divided per channel by `channel_ranges` at `strengths`) and of its
    weights adds, with the scales insert_qdq uses (`scale_floor` included), from the first
    SAMPLES samples."""
    index = GraphIndex(model.graph)
    planned = set(layers)
    convs = [n for n in model.graph.node if n.name in planned and n.op_type == "Conv" and not n.domain]
    tensors = sorted({n.input[0] for n in convs})
    if not tensors:
        return {}
    equalized = {
        t: channel_scales(channel_ranges[t], ranges.get(t, 0.0), (strengths or {}).get(t, 1.0))
        for t in tensors
        if t in channel_ranges
    }
    probe = Reference(_probe(convs, index, equalized, qmax, scale_floor))
    runner = Reference(with_outputs(model, tensors))
    totals: dict[str, np.ndarray] = {}
    samples = 0
    for feeds in batches:
        if samples >= SAMPLES:
            break
        values = runner.run(feeds)
        probe_feeds = {}
        for tensor in tensors:  # each FP32 value is dropped as its quantized twin is made
            x = values.pop(tensor).astype(np.float32, copy=False)
            if tensor in equalized:
                x = x / equalized[tensor].reshape([1, -1] + [1] * (x.ndim - 2))
            step = float(quant_scale(ranges.get(tensor, 0.0), qmax, scale_floor))
            probe_feeds[tensor], probe_feeds[f"{tensor}/q"] = (
                x,
                (np.clip(np.rint(x / step), -qmax, qmax) * step).astype(np.float32),
            )
        count = len(next(iter(probe_feeds.values())))
        for name, mean in probe.run(probe_feeds).items():
            totals[name] = totals.get(name, 0.0) + mean.astype(np.float64) * count
        samples += count
    return {node.name: [float(v) for v in totals[f"{node.name}/shift"] / samples] for node in convs} if samples else {}


def _probe(
    convs: list[onnx.NodeProto], index: GraphIndex, equalized: dict[str, np.ndarray], qmax: float, scale_floor: float
) -> onnx.ModelProto:
    """A graph reading each layer input as FP32 (x) and as quantized (x/q) and giving, per
    convolution, the per-channel mean of conv(x/q, Q(w)) - conv(x, w)."""
    nodes, initializers, inputs = [], [], {}
    for node in convs:
        tensor = node.input[0]
        weight = index.constant(node.input[1]).astype(np.float32)
        if tensor in equalized:
            weight = layer_weight_scaled(node, weight, equalized[tensor])
        _, scale = weight_scale(node, weight, qmax, scale_floor)
        quantized = (np.clip(np.rint(weight / scale), -qmax, qmax) * scale).astype(np.float32)
        rank = weight.ndim
        for name in (tensor, f"{tensor}/q"):
            inputs[name] = helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * rank)
        initializers += [
            numpy_helper.from_array(weight, f"{node.name}/w"),
            numpy_helper.from_array(quantized, f"{node.name}/wq"),
        ]
        settings = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        nodes += [
            helper.make_node("Conv", [tensor, f"{node.name}/w"], [f"{node.name}/fp32"], **settings),
            helper.make_node("Conv", [f"{tensor}/q", f"{node.name}/wq"], [f"{node.name}/int8"], **settings),
            helper.make_node("Sub", [f"{node.name}/int8", f"{node.name}/fp32"], [f"{node.name}/error"]),
            helper.make_node(
                "ReduceMean",
                [f"{node.name}/error"],
                [f"{node.name}/shift"],
                axes=[a for a in range(rank) if a != 1],
                keepdims=0,
            ),
        ]
    outputs = [helper.make_tensor_value_info(f"{n.name}/shift", TensorProto.FLOAT, None) for n in convs]
    graph = helper.make_graph(nodes, "bias_probe", list(inputs.values()), outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

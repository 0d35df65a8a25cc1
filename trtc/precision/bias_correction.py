"""Bias correction: take the mean error that quantization adds to each convolution's output
channel back out of its bias.

Rounding is not zero-mean on real activations: SiLU's negative half (-0.28..0) rounds to 0 under
a step of ~0.9 (YOLOv8n's early layers), a per-channel weight scale rounds small weights the same
way everywhere. Each such layer then shifts its output channels by a constant that later layers
amplify. The shift is local and measurable: with x the FP32 input a layer sees on the calibration
data, it is the per-channel mean of conv(Q(x), Q(w)) - conv(x, w). One more FP32 pass over the
calibration samples gives each layer's x; the means follow from the window sums of x and Q(x)
(with the layer's own strides, pads, dilations and groups, so borders count exactly) times the
weights, since a convolution is linear: no convolution runs twice.

Measured (benchmarks/real_int8.py, FP32 fallback, minmax, depthwise inputs equalized): YOLOv8n
detection F1 0.839 -> 0.930, PP-OCRv4 det text-map IoU 0.809 -> 0.819, MobileNetV3 unchanged (0.938).
"""

from __future__ import annotations

import itertools
import math
from typing import Iterable

import numpy as np
import onnx
from onnx import helper

from trtc.graph.graph_index import GraphIndex
from trtc.graph.reference import Reference, with_outputs
from trtc.precision.equalize import channel_scales, layer_weight_scaled
from trtc.precision.qdq import dequantized_weight, quant_scale

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
    convs = [_Layer(n, index) for n in model.graph.node if n.name in planned and n.op_type == "Conv" and not n.domain]
    tensors = sorted({layer.input for layer in convs})
    if not tensors:
        return {}
    equalized = {
        t: channel_scales(channel_ranges[t], ranges.get(t, 0.0), (strengths or {}).get(t, 1.0))
        for t in tensors
        if t in channel_ranges
    }
    for layer in convs:
        layer.quantize_weight(equalized.get(layer.input), qmax, scale_floor)
    steps = {t: quant_scale(ranges.get(t, 0.0), qmax, scale_floor) for t in tensors}
    runner = Reference(with_outputs(model, tensors))
    samples = 0
    for feeds in batches:
        if samples >= SAMPLES:
            break
        values = runner.run(feeds)  # each layer's FP32 input
        count = len(next(iter(values.values())))
        for tensor in tensors:
            x, x_q = _as_quantized(values.pop(tensor), equalized.get(tensor), steps[tensor], qmax)
            # Summed over the batch first: the window sums need one image per input, not one per sample.
            totals = (x.sum(axis=0, dtype=np.float64), x_q.sum(axis=0, dtype=np.float64))
            for layer in convs:
                if layer.input == tensor:
                    layer.add(*totals, count)
        samples += count
    return {layer.node.name: layer.mean_shift() for layer in convs} if samples else {}


def _as_quantized(
    x: np.ndarray, channel_scales: np.ndarray | None, step: np.ndarray, qmax: float
) -> tuple[np.ndarray, np.ndarray]:
    """(x, Q(x)) in FP32 as the Q/DQ graph computes them (qdq.py): x times the inverse of its
    channel scales when equalized, then QuantizeLinear's round(x / step) (half to even, as
    numpy's rint) saturated to INT8's [-qmax - 1, qmax], times step."""
    if channel_scales is not None:
        x = x * (1.0 / channel_scales).astype(np.float32).reshape([1, -1] + [1] * (x.ndim - 2))
    step = np.float32(step)
    quantized = x / step  # one new array, then in place: these inputs are most of the model's activations
    np.rint(quantized, out=quantized)
    np.clip(quantized, -qmax - 1, qmax, out=quantized)
    quantized *= step
    return x, quantized


class _Layer:
    """One corrected convolution. Its output's mean per channel is linear in its input: over all
    output positions it is the weights times the input summed at each kernel offset (the window
    sums, padding included). So the mean of conv(Q(x), Q(w)) - conv(x, w) needs the window sums
    of x and Q(x), not the two convolutions (2x the model's work per sample in onnxruntime)."""

    def __init__(self, node: onnx.NodeProto, index: GraphIndex):
        self.node, self.input = node, node.input[0]
        self.weight = index.constant(node.input[1]).astype(np.float32)
        settings = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        rank = self.weight.ndim - 2
        self.kernel = self.weight.shape[2:]
        self.strides = list(settings.get("strides", [1] * rank))
        self.dilations = list(settings.get("dilations", [1] * rank))
        self.pads = list(settings.get("pads", [0] * 2 * rank))
        auto_pad = settings.get("auto_pad", b"NOTSET")
        self.auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        self.groups = settings.get("group", 1)
        self.sums: list[np.ndarray] = []  # window sums of x and of Q(x), (C_in, taps) each
        self.positions = 0  # output positions summed over

    def quantize_weight(self, channel_scales: np.ndarray | None, qmax: float, scale_floor: float) -> None:
        if channel_scales is not None:
            self.weight = layer_weight_scaled(self.node, self.weight, channel_scales)
        self.quantized = dequantized_weight(self.node, self.weight, qmax, scale_floor)

    def add(self, x_total: np.ndarray, q_total: np.ndarray, count: int) -> None:
        begin, end, out = self._padding(x_total.shape[1:])
        sums = [
            _window_sums(total, self.kernel, self.strides, self.dilations, begin, end, out)
            for total in (x_total, q_total)
        ]
        self.sums = [a + b for a, b in zip(self.sums, sums)] if self.sums else sums
        self.positions += count * math.prod(out)

    def mean_shift(self) -> list[float]:
        x_sums, q_sums = self.sums
        shift = self._apply(self.quantized, q_sums) - self._apply(self.weight, x_sums)
        return [float(v) for v in shift / self.positions]

    def _apply(self, weight: np.ndarray, sums: np.ndarray) -> np.ndarray:
        """Per output channel, the sum over output positions of the convolution without bias."""
        out_channels, per_group = weight.shape[0], weight.shape[1]
        grouped = weight.reshape(self.groups, out_channels // self.groups, per_group, -1).astype(np.float64)
        return np.einsum("gokt,gkt->go", grouped, sums.reshape(self.groups, per_group, -1)).reshape(-1)

    def _padding(self, dims: tuple[int, ...]) -> tuple[list[int], list[int], list[int]]:
        """Padding before and after each spatial axis and the output's size, as ONNX's Conv sets them."""
        spans = [d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilations)]
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = [-(-n // s) for n, s in zip(dims, self.strides)]
            total = [max((o - 1) * s + span - n, 0) for o, s, span, n in zip(out, self.strides, spans, dims)]
            begin = [t // 2 if self.auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
            return begin, [t - b for t, b in zip(total, begin)], out
        rank = len(dims)
        pads = [0] * 2 * rank if self.auto_pad == "VALID" else self.pads
        begin, end = pads[:rank], pads[rank:]
        out = [(n + b + e - span) // s + 1 for n, b, e, span, s in zip(dims, begin, end, spans, self.strides)]
        return begin, end, out


def _window_sums(total, kernel, strides, dilations, begin, end, out) -> np.ndarray:
    """(C, taps): for each channel and kernel offset, the sum of the zero-padded input `total`
    (C, *spatial) over the positions that offset meets in every output position."""
    padded = np.pad(total, [(0, 0), *zip(begin, end)])
    axes = tuple(range(1, padded.ndim))
    sums = []
    for offset in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(offset, dilations, strides, out))
        sums.append(padded[(slice(None), *window)].sum(axis=axes))
    return np.stack(sums, axis=1)

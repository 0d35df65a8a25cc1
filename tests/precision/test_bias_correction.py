"""Bias correction: the mean error INT8 adds to a convolution's output channels is measured on
the calibration data and taken out of its bias."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import models
from tests.passes.helpers import outputs
from trtc.graph.reference import Reference, with_outputs
from trtc.passes import PassContext, run_passes, select_passes
from trtc.precision.bias_correction import SAMPLES, bias_shifts
from trtc.precision.calibrate import collect_ranges
from trtc.precision.equalize import channel_scales, depthwise_inputs, layer_weight_scaled
from trtc.precision.qdq import FP16_SMALLEST, insert_qdq, plan_quantization, quant_scale, weight_scale
from trtc.spec.model import FusionSpec


def conv(with_bias: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.abs(rng.standard_normal((8, 4, 3, 3))).astype(np.float32) * 0.2, "w")]
    if with_bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"] if with_bias else ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 8, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def silu_like_samples(seed: int) -> np.ndarray:
    """Mostly small negative values (SiLU's lower half) that round to 0 under the step a few
    large values set: a systematic error, not noise."""
    rng = np.random.default_rng(seed)
    x = -rng.uniform(0.05, 0.28, (8, 4, 8, 8))
    x[:, :, 0, 0] = rng.uniform(50, 100, (8, 4))
    return x.astype(np.float32)


def channel_mean_error(model, candidate) -> np.ndarray:
    feeds = {"x": silu_like_samples(9)}
    expected, actual = outputs(model, feeds)[0], outputs(candidate, feeds)[0]
    return np.abs((actual - expected).mean(axis=(0, 2, 3)))


def test_the_mean_shift_of_rounding_is_taken_out_of_the_bias_or_a_new_one():
    for with_bias in (True, False):
        model = conv(with_bias)
        plan = plan_quantization(model)
        batches = [{"x": silu_like_samples(seed)} for seed in range(3)]
        ranges = collect_ranges(model, plan.activations, batches, "minmax")[0]
        shifts = bias_shifts(model, plan.layers, ranges, {}, batches, 0.0)
        plain = channel_mean_error(model, insert_qdq(model, plan, ranges, "int8"))
        corrected = channel_mean_error(model, insert_qdq(model, plan, ranges, "int8", bias_shifts=shifts))
        assert plain.min() > 0.5  # every channel is shifted by the vanished negative values
        assert corrected.max() < 0.1 * plain.min()


def test_bias_correction_reads_only_its_first_samples():
    """Each sample is a full FP32 pass: the mean shift settles within SAMPLES of them."""
    model = conv(True)
    plan = plan_quantization(model)
    ranges = collect_ranges(model, plan.activations, [{"x": silu_like_samples(0)}], "minmax")[0]
    read = []

    def batches():
        for seed in range(3 * SAMPLES):  # batches of 8 samples
            read.append(seed)
            yield {"x": silu_like_samples(seed)}

    bias_shifts(model, plan.layers, ranges, {}, batches(), 0.0)
    assert len(read) * 8 <= SAMPLES + 8


def shifts_of_two_convolutions(model, layers, ranges, channel_ranges, batches, floor):
    """Bias shifts as the Q/DQ graph makes them, measured by running it: each layer input x read
    out of an FP32 run, fed to conv(x, w) and to conv(DQ(Q(x)), Q(w)) with onnxruntime's own
    QuantizeLinear and DequantizeLinear (x times the inverse channel scales first when
    equalized, as qdq.py writes it), their difference averaged per output channel."""
    convs = [node for node in model.graph.node if node.name in layers and node.op_type == "Conv"]
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    tensors = sorted({node.input[0] for node in convs})
    values = [Reference(with_outputs(model, tensors)).run(feeds) for feeds in batches]
    shifts = {}
    for node in convs:
        tensor = node.input[0]
        weight = weights[node.input[1]].astype(np.float32)
        scales = channel_scales(channel_ranges[tensor], ranges[tensor]) if tensor in channel_ranges else None
        if scales is not None:
            weight = layer_weight_scaled(node, weight, scales)
        _, scale = weight_scale(node, weight, 127.0, floor)
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        rank = weight.ndim
        inverse = np.ones(1, np.float32) if scales is None else (1.0 / scales).reshape([1, -1] + [1] * (rank - 2))
        probe = helper.make_graph(
            [
                helper.make_node("Mul", ["x", "inverse"], ["xe"]),
                helper.make_node("QuantizeLinear", ["xe", "step", "zero"], ["q"]),
                helper.make_node("DequantizeLinear", ["q", "step", "zero"], ["xq"]),
                helper.make_node("Conv", ["xe", "w"], ["fp32"], **attributes),
                helper.make_node("Conv", ["xq", "wq"], ["int8"], **attributes),
                helper.make_node("Sub", ["int8", "fp32"], ["error"]),
                helper.make_node("ReduceMean", ["error"], ["shift"], axes=[0, *range(2, rank)], keepdims=0),
            ],
            "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None] * rank)],
            [helper.make_tensor_value_info("shift", TensorProto.FLOAT, None)],
            [
                numpy_helper.from_array(weight, "w"),
                numpy_helper.from_array((np.clip(np.rint(weight / scale), -127, 127) * scale).astype(np.float32), "wq"),
                numpy_helper.from_array(inverse.astype(np.float32), "inverse"),
                numpy_helper.from_array(np.asarray(quant_scale(ranges[tensor], 127.0, floor), np.float32), "step"),
                numpy_helper.from_array(np.int8(0), "zero"),
            ],
        )
        session = Reference(helper.make_model(probe, opset_imports=[helper.make_opsetid("", 17)]), optimize=False)
        total = sum(session.run({"x": run[tensor]})["shift"].astype(np.float64) * len(run[tensor]) for run in values)
        shifts[node.name] = [float(v) for v in total / sum(len(run[tensor]) for run in values)]
    return shifts


def assert_same_shifts(got: dict, expected: dict) -> None:
    """Equal up to the FP32 sums of onnxruntime's convolutions (the window sums add in FP64)."""
    assert got.keys() == expected.keys()
    for layer, shifts in expected.items():
        tolerance = 1e-4 * max(np.abs(shifts).max(), 1e-6)
        np.testing.assert_allclose(got[layer], shifts, rtol=0, atol=tolerance, err_msg=layer)


def test_bias_shifts_from_window_sums_are_those_of_the_two_convolutions():
    """Depthwise inputs equalized and plain ones, with the FP16 fallback's scale floor and without."""
    model = models.mobilenet_like()
    run_passes(model, select_passes(FusionSpec()), PassContext())  # BatchNorm folded, as a build does
    plan = plan_quantization(model)
    batches = [
        {"x": np.random.default_rng(seed).standard_normal((8, 3, 32, 32)).astype(np.float32)} for seed in range(3)
    ]
    depthwise = depthwise_inputs(model, plan.layers, plan.residuals, plan.activations)
    ranges, _, channel_ranges, _ = collect_ranges(model, plan.activations, batches, "minmax", channel_tensors=depthwise)
    assert channel_ranges  # the equalized path is covered
    for floor in (0.0, FP16_SMALLEST):
        expected = shifts_of_two_convolutions(model, plan.layers, ranges, channel_ranges, batches, floor)
        assert_same_shifts(bias_shifts(model, plan.layers, ranges, channel_ranges, batches, floor), expected)


@pytest.mark.parametrize(
    "spatial, kernel, attributes, groups",
    [
        ((9, 11), (3, 3), {"strides": [2, 2], "pads": [1, 0, 2, 1]}, 1),
        ((10, 10), (3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, 1),
        ((9, 10), (3, 2), {"auto_pad": "SAME_UPPER", "strides": [2, 3]}, 1),
        ((9, 10), (2, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, 1),
        ((8, 9), (3, 3), {"auto_pad": "VALID", "strides": [2, 1]}, 1),
        ((8, 8), (3, 3), {"pads": [1, 1, 1, 1]}, 2),
        ((8, 8), (3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}, 4),
        ((17,), (5,), {"strides": [3], "pads": [2, 1]}, 1),
        ((5, 6, 7), (3, 1, 2), {"pads": [1, 0, 1, 1, 0, 0], "strides": [1, 2, 2]}, 2),
    ],
    ids=["strided, uneven pads", "dilated", "same upper", "same lower", "valid", "2 groups", "depthwise", "1d", "3d"],
)
def test_window_sums_follow_every_padding_stride_and_group_of_a_convolution(spatial, kernel, attributes, groups):
    rng = np.random.default_rng(7)
    channels = 4
    weight = (rng.standard_normal((8, channels // groups, *kernel)) * 0.3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=groups, **attributes)],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, *spatial])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    batches = [
        {"x": (rng.standard_normal((3, channels, *spatial)) - 0.4).astype(np.float32) * (1 + 20 * (seed == 0))}
        for seed in range(2)
    ]
    plan = plan_quantization(model)
    ranges = collect_ranges(model, plan.activations, batches, "minmax")[0]
    expected = shifts_of_two_convolutions(model, plan.layers, ranges, {}, batches, 0.0)
    assert np.abs(expected["conv"]).max() > 1e-3  # a shift to find
    assert_same_shifts(bias_shifts(model, plan.layers, ranges, {}, batches, 0.0), expected)


def test_inputs_beyond_the_range_saturate_as_quantize_linear_does():
    """Ranges clip (entropy, mse, percentile): QuantizeLinear saturates x below the range at -128
    steps and above it at 127; the shift is measured with the same levels (it took -127)."""
    model = conv(True)
    plan = plan_quantization(model)
    batches = [{"x": np.random.default_rng(seed).standard_normal((8, 4, 8, 8)).astype(np.float32)} for seed in range(2)]
    ranges = {t: 0.5 * r for t, r in collect_ranges(model, plan.activations, batches, "minmax")[0].items()}
    expected = shifts_of_two_convolutions(model, plan.layers, ranges, {}, batches, 0.0)
    assert_same_shifts(bias_shifts(model, plan.layers, ranges, {}, batches, 0.0), expected)

"""Bias correction: the mean error INT8 adds to a convolution's output channels is measured on
the calibration data and taken out of its bias."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.passes.helpers import outputs
from trtc.precision.bias_correction import SAMPLES, bias_shifts
from trtc.precision.calibrate import collect_ranges
from trtc.precision.qdq import insert_qdq, plan_quantization


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

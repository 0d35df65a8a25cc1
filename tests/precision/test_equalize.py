"""Depthwise input equalization: quiet channels of a depthwise convolution's input keep their
precision, the FP32 function is unchanged, and TensorRT still builds INT8 kernels."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.models import build_report
from tests.passes.helpers import outputs
from trtc.precision.calibrate import collect_ranges
from trtc.precision.equalize import channel_scales, depthwise_inputs, scaled_weight
from trtc.precision.qdq import insert_qdq, plan_quantization

CHANNELS = 16


def pointwise_then_depthwise() -> onnx.ModelProto:
    """x -> 1x1 Conv (channel c scaled by 2^(c/2): ranges 1 to ~180) -> Relu -> 3x3 depthwise Conv -> y."""
    rng = np.random.default_rng(0)
    loudness = 2.0 ** (np.arange(CHANNELS) / 2)
    pointwise = (rng.standard_normal((CHANNELS, 8, 1, 1)) * 0.3 * loudness[:, None, None, None]).astype(np.float32)
    depthwise = (rng.standard_normal((CHANNELS, 1, 3, 3)) * 0.3).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "pw"], ["p"], name="pointwise"),
            helper.make_node("Relu", ["p"], ["r"], name="relu"),
            helper.make_node("Conv", ["r", "dw"], ["y"], name="depthwise", group=CHANNELS, pads=[1, 1, 1, 1]),
        ],
        "dw",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", CHANNELS, 16, 16])],
        [numpy_helper.from_array(pointwise, "pw"), numpy_helper.from_array(depthwise, "dw")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def quantized(model, equalize: bool):
    plan = plan_quantization(model)
    rng = np.random.default_rng(1)
    batches = [{"x": rng.standard_normal((8, 8, 16, 16)).astype(np.float32)} for _ in range(2)]
    channel_tensors = depthwise_inputs(model, plan.layers, plan.residuals, plan.activations) if equalize else []
    ranges, _, channel_ranges, _ = collect_ranges(
        model, plan.activations, batches, "minmax", channel_tensors=channel_tensors
    )
    return insert_qdq(model, plan, ranges, "int8", channel_ranges=channel_ranges)


def channel_errors(model, candidate) -> np.ndarray:
    feeds = {"x": np.random.default_rng(2).standard_normal((4, 8, 16, 16)).astype(np.float32)}
    expected, actual = outputs(model, feeds)[0], outputs(candidate, feeds)[0]
    return np.linalg.norm((expected - actual).transpose(1, 0, 2, 3).reshape(CHANNELS, -1), axis=1) / np.linalg.norm(
        expected.transpose(1, 0, 2, 3).reshape(CHANNELS, -1), axis=1
    )


def test_only_inputs_read_by_depthwise_convolutions_are_equalized():
    model = pointwise_then_depthwise()
    plan = plan_quantization(model)
    assert depthwise_inputs(model, plan.layers, plan.residuals, plan.activations) == [
        "r"
    ]  # not x: a dense Conv reads it


def test_quiet_channels_of_a_depthwise_input_keep_their_precision():
    model = pointwise_then_depthwise()
    plain, equalized = channel_errors(model, quantized(model, False)), channel_errors(model, quantized(model, True))
    assert plain[:4].min() > 0.2  # one scale for ranges 1 to 180: the quietest channels are mostly noise
    assert equalized.max() < 0.03  # every channel uses the whole INT8 range


def test_scaled_weights_undo_the_channel_division_with_a_depth_multiplier():
    """conv(x / s, w * s) == conv(x, w) for a depthwise Conv with two outputs per channel."""
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((2 * CHANNELS, 1, 3, 3)).astype(np.float32)
    scales = channel_scales(list(rng.uniform(0.01, 5.0, CHANNELS)), 5.0)
    x = rng.standard_normal((2, CHANNELS, 8, 8)).astype(np.float32)

    def depthwise(w, feed):
        graph = helper.make_graph(
            [helper.make_node("Conv", ["x", "w"], ["y"], group=CHANNELS)],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(feed.shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(w, "w")],
        )
        return outputs(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), {"x": feed})[0]

    divided = (x / scales.reshape(1, -1, 1, 1)).astype(np.float32)
    np.testing.assert_allclose(
        depthwise(scaled_weight(weight, scales), divided), depthwise(weight, x), rtol=1e-4, atol=1e-4
    )


@pytest.mark.build
def test_tensorrt_builds_the_equalized_depthwise_convolution_in_int8(tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "batch.npy", np.random.default_rng(4).standard_normal((8, 8, 16, 16)).astype(np.float32))
    report = build_report(
        tmp_path,
        pointwise_then_depthwise(),
        "max_batch: 8\nprecision: {mode: int8, calibration: {data: calib, samples: 8}}\n",
    )
    section = report["calibration"]["equalized_inputs"]
    assert (
        list(section) == ["depthwise"]
        and section["depthwise"]["input"] == "r"
        and section["depthwise"]["largest_boost"] > 50
    )
    assert set(report["calibration"]["bias_corrected"]) == {"pointwise", "depthwise"}  # on by default, listed per layer
    markdown = (tmp_path / "build" / "spec.report.md").read_text()
    assert "| `depthwise` | depthwise equalization: 16 channels, quiet ones lifted up to " in markdown
    assert "| `pointwise` | bias correction: largest channel shift " in markdown
    depthwise = [k for k in report["fusion"]["kernels"] if "depthwise" in k["onnx_nodes"] and k["precision"] == "Int8"]
    assert depthwise, [(k["onnx_nodes"], k["precision"]) for k in report["fusion"]["kernels"]]

"""TensorRT-RTX builds no INT8 deconvolution: trtc leaves ConvTranspose out of INT8 there (its
Q/DQ would only add rounding error to a layer that runs in the fallback precision), and still
quantizes it for full TensorRT."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import models
from tests.passes.helpers import outputs
from trtc.precision.qdq import insert_qdq, plan_quantization


def conv_then_deconv() -> onnx.ModelProto:
    """x -> 3x3 Conv -> Relu -> 2x2 stride-2 ConvTranspose -> y (PP-OCRv4 det's upsampling head in small)."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("ConvTranspose", ["r", "w2"], ["y"], name="deconv", strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "deconv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array((rng.standard_normal((32, 8, 3, 3)) * 0.2).astype(np.float32), "w1"),
            numpy_helper.from_array((rng.standard_normal((32, 16, 2, 2)) * 0.2).astype(np.float32), "w2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_convtranspose_is_left_out_of_int8_on_tensorrt_rtx_only():
    model = conv_then_deconv()
    rtx, full = plan_quantization(model, backend="tensorrt-rtx"), plan_quantization(model, backend="tensorrt")
    assert rtx.layers == ["conv"] and rtx.skipped["deconv"].startswith("TensorRT-RTX builds no INT8 deconvolution")
    assert full.layers == ["conv", "deconv"]


def test_leaving_the_deconvolution_unquantized_keeps_the_graph_closer_to_fp32():
    model = conv_then_deconv()
    feeds = {"x": np.random.default_rng(1).standard_normal((4, 8, 16, 16)).astype(np.float32)}
    ranges = {"x": 4.0, "r": 3.0}
    expected = outputs(model, feeds)[0]

    def error(plan):
        return np.linalg.norm(outputs(insert_qdq(model, plan, ranges, "int8"), feeds)[0] - expected) / np.linalg.norm(
            expected
        )

    assert error(plan_quantization(model, backend="tensorrt-rtx")) < 0.8 * error(
        plan_quantization(model, backend="tensorrt")
    )


@pytest.mark.build
def test_tensorrt_rtx_runs_a_quantized_deconvolution_in_float_so_trtc_does_not_quantize_it(tmp_path):
    # The fact the rule rests on: a deconvolution between Q/DQ is no Int8 kernel on TensorRT-RTX.
    quantized = insert_qdq(
        conv_then_deconv(), plan_quantization(conv_then_deconv(), backend="tensorrt"), {"x": 4.0, "r": 3.0}, "int8"
    )
    report = models.build_report(tmp_path / "given", quantized, "max_batch: 4\nprecision: fp32\n")
    assert [
        k["precision"] for k in report["fusion"]["kernels"] if "deconv" in k["onnx_nodes"] and k["type"] == "deconv"
    ] == ["Float"]
    # trtc's INT8 build of the float model: the convolution in Int8, the deconvolution left to the fallback.
    (tmp_path / "calib").mkdir()
    np.save(
        tmp_path / "calib" / "batch.npy", np.random.default_rng(2).standard_normal((32, 8, 16, 16)).astype(np.float32)
    )
    report = models.build_report(
        tmp_path, conv_then_deconv(), "max_batch: 4\nprecision: {mode: int8, calibration: {data: calib}}\n"
    )
    assert report["calibration"]["not_quantized"]["deconv"].startswith("TensorRT-RTX builds no INT8 deconvolution")
    kernels = [
        (k["type"], k["precision"]) for k in report["fusion"]["kernels"] if {"conv", "deconv"} & set(k["onnx_nodes"])
    ]
    assert ("correlation", "Int8") in kernels and ("deconv", "Half") in kernels, kernels

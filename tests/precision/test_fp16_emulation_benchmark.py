"""benchmarks/fp16_emulation.py judges the FP16 graph trtc hands TensorRT: its FP32 emulation
computes what trtc's own accuracy check computes (autocast's emulation of the FP32 graph), FP16
rounding included, Q/DQ with FP16 scales included."""

import numpy as np
from onnx import helper, numpy_helper

from benchmarks.fp16_emulation import emulate_fp16
from tests.passes.helpers import model
from trtc.graph.reference import Reference
from trtc.precision.autocast import autocast
from trtc.precision.opset import with_opset
from trtc.precision.qdq import FP16_SMALLEST, insert_qdq, plan_quantization


def conv_silu_conv():
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.7).astype(np.float32), "wa"),
        numpy_helper.from_array((rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32), "wb"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["a"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["a", "s"], ["silu"], name="silu"),
        helper.make_node("Conv", ["silu", "wb"], ["b"], name="conv_b"),
        helper.make_node("Sigmoid", ["b"], ["y"], name="score"),
    ]
    return model(nodes, {"x": ["N", 3, 16, 16]}, ["y"], weights)


def run(graph, feeds, optimize=False):
    return Reference(graph, optimize=optimize).run(feeds)["y"]


def test_the_emulated_fp16_graph_computes_what_trtc_measures():
    fp32 = conv_silu_conv()
    plan = plan_quantization(fp32)
    quantized = with_opset(insert_qdq(fp32, plan, {"x": 3.0, "silu": 4.0}, "int8", FP16_SMALLEST), 19)
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    measured_by_trtc = run(autocast(quantized, "fp16", emulate=True).model, feeds)
    emulated = run(emulate_fp16(autocast(quantized, "fp16").model), feeds)
    np.testing.assert_array_equal(emulated, measured_by_trtc)
    unrounded = run(quantized, feeds)
    assert np.abs(emulated - unrounded).max() > 1e-5  # the rounding is there
    assert np.abs(emulated - unrounded).max() < 1e-2

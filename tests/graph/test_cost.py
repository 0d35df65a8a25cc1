"""FLOPs and MAC per node against hand-computed values (design notes' 1x1 convolution formula)."""

import numpy as np
from onnx import helper, numpy_helper

from tests.passes.helpers import model, weights
from trtc.graph.cost import node_costs, totals


def test_1x1_convolution_matches_the_design_notes():
    c1, c2, h, w = 16, 32, 20, 24
    conv = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], {"x": [1, c1, h, w]}, ["y"], [weights("w", (c2, c1, 1, 1))])
    cost = node_costs(conv)["conv"]
    assert cost.flops == c1 * h * w * c2
    assert cost.mac_bytes == 4 * (h * w * c1 + c1 * c2 + h * w * c2)


def test_grouped_strided_dilated_convolution():
    # 8 -> 12 channels, groups 4, 3x3 kernel, stride 2, dilation 2, pads 2: output 2 x 12 x 8 x 8.
    conv = model([helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", group=4, strides=[2, 2], dilations=[2, 2], pads=[2, 2, 2, 2])],
                 {"x": [2, 8, 16, 16]}, ["y"], [weights("w", (12, 2, 3, 3)), weights("b", (12,))])
    cost = node_costs(conv)["conv"]
    outputs = 2 * 12 * 8 * 8
    assert cost.flops == outputs * 2 * 3 * 3
    assert cost.bytes_read == 4 * (2 * 8 * 16 * 16 + 12 * 2 * 3 * 3 + 12)
    assert cost.bytes_written == 4 * outputs


def test_batched_matmul_gemm_and_free_views():
    shape = numpy_helper.from_array(np.array([3, 4, 6], np.int64), "shape")
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"], name="matmul"),
             helper.make_node("Reshape", ["m", "shape"], ["r"], name="reshape"),
             helper.make_node("Transpose", ["r"], ["t"], name="transpose", perm=[0, 2, 1]),
             helper.make_node("Gemm", ["g", "gw"], ["y"], name="gemm", transB=1)]
    graph = model(nodes, {"a": [3, 4, 5], "b": [3, 5, 6], "g": [7, 9]}, ["t", "y"], [shape, weights("gw", (2, 9))])
    costs = node_costs(graph)
    assert costs["matmul"].flops == 3 * 4 * 6 * 5
    assert (costs["reshape"].flops, costs["reshape"].mac_bytes) == (0, 0)
    assert (costs["transpose"].flops, costs["transpose"].mac_bytes) == (0, 2 * 4 * 72)
    assert costs["gemm"].flops == 7 * 2 * 9
    assert totals(costs)["flops"] == 360 + 126


def test_dynamic_shapes_are_unknown_not_guessed_and_concrete_shapes_resolve_them():
    relu = model([helper.make_node("Relu", ["x"], ["y"], name="relu")], {"x": ["N", 4]}, ["y"])
    assert node_costs(relu)["relu"].known is False
    resolved = node_costs(relu, {"x": (8, 4)})["relu"]
    assert (resolved.known, resolved.flops, resolved.mac_bytes) == (True, 32, 256)

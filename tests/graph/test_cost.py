"""FLOPs and MAC per node against hand-computed values (design notes' 1x1 convolution formula)."""

import numpy as np
from onnx import helper, numpy_helper

from tests.passes.helpers import model, weights
from trtc.graph.cost import node_costs, totals


def test_1x1_convolution_matches_the_design_notes():
    c1, c2, h, w = 16, 32, 20, 24
    conv = model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        {"x": [1, c1, h, w]},
        ["y"],
        [weights("w", (c2, c1, 1, 1))],
    )
    cost = node_costs(conv)["conv"]
    assert cost.flops == c1 * h * w * c2
    assert cost.mac_bytes == 4 * (h * w * c1 + c1 * c2 + h * w * c2)


def test_grouped_strided_dilated_convolution():
    # 8 -> 12 channels, groups 4, 3x3 kernel, stride 2, dilation 2, pads 2: output 2 x 12 x 8 x 8.
    conv = model(
        [
            helper.make_node(
                "Conv",
                ["x", "w", "b"],
                ["y"],
                name="conv",
                group=4,
                strides=[2, 2],
                dilations=[2, 2],
                pads=[2, 2, 2, 2],
            )
        ],
        {"x": [2, 8, 16, 16]},
        ["y"],
        [weights("w", (12, 2, 3, 3)), weights("b", (12,))],
    )
    cost = node_costs(conv)["conv"]
    outputs = 2 * 12 * 8 * 8
    assert cost.flops == outputs * 2 * 3 * 3
    assert cost.bytes_read == 4 * (2 * 8 * 16 * 16 + 12 * 2 * 3 * 3 + 12)
    assert cost.bytes_written == 4 * outputs


def test_batched_matmul_gemm_and_free_views():
    shape = numpy_helper.from_array(np.array([3, 4, 6], np.int64), "shape")
    nodes = [
        helper.make_node("MatMul", ["a", "b"], ["m"], name="matmul"),
        helper.make_node("Reshape", ["m", "shape"], ["r"], name="reshape"),
        helper.make_node("Transpose", ["r"], ["t"], name="transpose", perm=[0, 2, 1]),
        helper.make_node("Gemm", ["g", "gw"], ["y"], name="gemm", transB=1),
    ]
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


def _ints(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def test_gather_and_slice_read_only_what_they_copy():
    # A 1000 x 64 embedding table: a Gather of 6 rows reads 6 rows, not 256 kB.
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"], name="gather"),
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["s"], name="slice"),
    ]
    graph = model(
        nodes,
        {"x": [10, 20]},
        ["e", "s"],
        [
            weights("table", (1000, 64)),
            _ints("ids", [[1, 2, 3], [4, 5, 6]]),
            _ints("starts", [2]),
            _ints("ends", [5]),
            _ints("axes", [0]),
        ],
    )
    costs = node_costs(graph)
    assert (costs["gather"].flops, costs["gather"].bytes_read, costs["gather"].bytes_written) == (
        0,
        4 * 6 * 64 + 8 * 6,
        4 * 6 * 64,
    )
    assert (costs["slice"].flops, costs["slice"].bytes_read, costs["slice"].bytes_written) == (
        0,
        4 * 3 * 20 + 3 * 8,
        4 * 3 * 20,
    )


def test_pooling_reductions_softmax_normalization_resize_einsum():
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["x"], ["m"], name="mean", axes=[2, 3]),
        helper.make_node("Softmax", ["x"], ["sm"], name="softmax", axis=1),
        helper.make_node("LayerNormalization", ["x", "gamma"], ["ln"], name="layernorm", axis=-1),
        helper.make_node("Resize", ["x", "", "scales"], ["up"], name="bilinear", mode="linear"),
        helper.make_node("Resize", ["x", "", "scales"], ["near"], name="nearest", mode="nearest"),
        helper.make_node("Einsum", ["a", "b"], ["e"], name="einsum", equation="bij,bjk->bik"),
    ]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    graph = model(
        nodes,
        {"x": [1, 3, 8, 8], "a": [2, 3, 4], "b": [2, 4, 5]},
        ["p", "m", "sm", "ln", "up", "near", "e"],
        [weights("gamma", (8,)), scales],
        opset=13,
    )
    del graph.graph.node[3]  # LayerNormalization needs opset 17; checked below on its own
    costs = node_costs(graph)
    assert costs["pool"].flops == 3 * 4 * 4 * 9
    assert costs["mean"].flops == 3 * 8 * 8
    assert costs["softmax"].flops == 3 * 192
    assert costs["bilinear"].flops == 3 * 16 * 16 * 3  # two resized axes: 2^2 - 1 multiply-adds per output
    assert (costs["nearest"].flops, costs["nearest"].bytes_written) == (0, 4 * 3 * 16 * 16)
    assert costs["einsum"].flops == 2 * 3 * 4 * 5
    norm = model([nodes[3]], {"x": [1, 3, 8, 8]}, ["ln"], [weights("gamma", (8,))])
    assert node_costs(norm)["layernorm"].flops == 5 * 192


def test_ops_without_a_flop_formula_are_unknown_but_keep_their_bytes():
    topk = model(
        [helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk")],
        {"x": [4, 10]},
        ["values"],
        [_ints("k", [3])],
    )  # indices: int64, inferred
    cost = node_costs(topk)["topk"]
    assert (cost.known, cost.reason, cost.flops) == (False, "no FLOP formula for TopK", 0)
    assert (cost.bytes_read, cost.bytes_written) == (4 * 40 + 8, 4 * 12 + 8 * 12)
    assert totals({"topk": cost})["unknown_nodes"] == ["topk"]


def test_lstm_counts_its_gate_matmuls():
    # 5 steps x batch 2; 4 gates of 16 hidden units over 8 inputs (W) and 16 hidden (R).
    lstm = model(
        [helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm", hidden_size=16)],
        {"x": [5, 2, 8]},
        ["y"],
        [weights("W", (1, 64, 8)), weights("R", (1, 64, 16))],
    )
    cost = node_costs(lstm)["lstm"]
    assert (cost.known, cost.flops) == (True, 5 * 2 * (64 * 8 + 64 * 16))
    assert cost.bytes_written == 4 * 5 * 1 * 2 * 16


def test_grouped_strided_conv_transpose_and_batchnorm():
    # 4 -> 6 channels in 2 groups: each input element scatters into 3 channels x 3 x 3 taps.
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv", group=2, strides=[2, 2]),
        helper.make_node("BatchNormalization", ["y", "s", "b", "m", "v"], ["z"], name="bn"),
    ]
    graph = model(nodes, {"x": [1, 4, 5, 5]}, ["z"], [weights("w", (4, 3, 3, 3)), *[weights(n, (6,)) for n in "sbmv"]])
    costs = node_costs(graph)
    outputs = 6 * 11 * 11  # (5 - 1) * 2 + 3
    assert costs["deconv"].flops == 4 * 5 * 5 * 3 * 3 * 3
    assert (costs["deconv"].bytes_read, costs["deconv"].bytes_written) == (4 * (100 + 108), 4 * outputs)
    assert costs["bn"].flops == 2 * outputs  # a scale and a shift per element


def _reshape_by_shape_arithmetic(opset: int, constants_as_nodes: bool):
    """x[N,8,1,W] -> Reshape to [N, 8, -1] (its target cut from Shape(x) by Slice, then Concat) ->
    MatMul [W, 16] -> Softmax: the pattern of Paddle's exports (opset 11/12) before a transformer."""
    constants = {"starts": [0], "ends": [2], "axes": [0], "minus_one": [-1]}
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Slice", ["shape", "starts", "ends", "axes"], ["n_c"], name="slice"),
        helper.make_node("Concat", ["n_c", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "w"], ["m"], name="matmul"),
        helper.make_node("Softmax", ["m"], ["y"], name="softmax", axis=-1),
    ]
    initializers = [weights("w", (4, 16))]
    if constants_as_nodes:
        nodes[:0] = [
            helper.make_node("Constant", [], [name], name=f"c_{name}", value=_ints(name, values))
            for name, values in constants.items()
        ]
    else:
        initializers += [_ints(name, values) for name, values in constants.items()]
    return model(nodes, {"x": ["N", 8, 1, "W"]}, ["y"], initializers, opset=opset)


def test_shapes_computed_by_shape_arithmetic_resolve_at_concrete_shapes_in_every_opset():
    """onnx's data propagation follows Slice only from opset 13: at older opsets the Reshape's
    output, and so the MatMul's FLOPs, were unknown (rapidocr's PP-OCRv4 recogniser and PP-OCR
    classifier, opset 12 and 11: every attention MatMul)."""
    for opset in (11, 12, 13, 17):
        for as_nodes in (False, True):
            costs = node_costs(_reshape_by_shape_arithmetic(opset, as_nodes), {"x": (2, 8, 1, 4)})
            matmul, softmax = costs["matmul"], costs["softmax"]
            assert (matmul.known, matmul.flops) == (True, 2 * 8 * 16 * 4), (opset, as_nodes, matmul.reason)
            assert softmax.known and costs["reshape"].known, (opset, as_nodes)
    # dynamic dimensions stay unknown, never guessed
    assert node_costs(_reshape_by_shape_arithmetic(12, False))["matmul"].known is False

from onnx import helper

from tests.passes.helpers import apply, assert_same_function, batchnorm_params, model, weights
from trtc.passes.fold_batchnorm import FoldBatchNorm

BN_INPUTS = ["bn.scale", "bn.bias", "bn.mean", "bn.var"]
SHAPES = [{"x": (1, 3, 8, 8)}, {"x": (4, 3, 5, 7)}]


def conv_bn(extra_nodes=(), outputs=("y",), conv_weight_is_input=False, bias=True):
    conv_inputs = ["x", "w"] + (["b"] if bias else [])
    nodes = [
        helper.make_node("Conv", conv_inputs, ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", *BN_INPUTS], ["y"], name="bn", epsilon=1e-3),
        *extra_nodes,
    ]
    inits = (
        batchnorm_params("bn", 6)
        + ([] if conv_weight_is_input else [weights("w", (6, 3, 3, 3))])
        + ([weights("b", (6,), 2)] if bias else [])
    )
    inputs = {"x": ["N", 3, "H", "W"], **({"w": [6, 3, 3, 3]} if conv_weight_is_input else {})}
    return model(nodes, inputs, list(outputs), inits)


def test_folds_into_conv_and_keeps_function():
    before = conv_bn()
    after, changes = apply(before, FoldBatchNorm())
    assert [n.op_type for n in after.graph.node] == ["Conv"]
    assert [(c.kind, c.nodes_before, c.nodes_after) for c in changes] == [("fold", ("conv", "bn"), ("conv+bn",))]
    assert after.graph.node[0].output[0] == "y"
    assert_same_function(before, after, SHAPES)
    again, more = apply(after, FoldBatchNorm())
    assert more == []


def test_conv_without_bias_gets_one():
    before = conv_bn(bias=False)
    after, _ = apply(before, FoldBatchNorm())
    assert len(after.graph.node[0].input) == 3
    assert_same_function(before, after, SHAPES)


def test_does_not_fold_when_conv_output_has_another_reader():
    relu = helper.make_node("Relu", ["c"], ["z"], name="relu")
    before = conv_bn(extra_nodes=[relu], outputs=("y", "z"))
    after, changes = apply(before, FoldBatchNorm())
    assert "Conv" in [n.op_type for n in after.graph.node] and not any(
        c.nodes_before == ("conv", "bn") for c in changes
    )
    assert_same_function(before, after, SHAPES)


def test_does_not_fold_when_conv_output_is_a_graph_output():
    before = conv_bn(outputs=("y", "c"))
    after, changes = apply(before, FoldBatchNorm())
    assert not any("conv" in c.nodes_before for c in changes)
    assert_same_function(before, after, SHAPES)


def test_does_not_fold_into_conv_with_non_constant_weights():
    before = conv_bn(conv_weight_is_input=True)
    after, changes = apply(before, FoldBatchNorm())
    assert not any("conv" in c.nodes_before for c in changes)


def test_lone_batchnorm_becomes_scale_and_shift():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("BatchNormalization", ["r", *BN_INPUTS], ["y"], name="bn"),
    ]
    before = model(nodes, {"x": ["N", 6, 4, 4]}, ["y"], batchnorm_params("bn", 6))
    after, changes = apply(before, FoldBatchNorm())
    assert [n.op_type for n in after.graph.node] == ["Relu", "Mul", "Add"]
    assert changes[0].nodes_after == ("bn/scale", "bn/shift")
    assert_same_function(before, after, [{"x": (2, 6, 4, 4)}])


def test_folds_into_conv_transpose_with_groups_and_gemm():
    convt = [
        helper.make_node("ConvTranspose", ["x", "wt"], ["c"], name="convt", group=3, strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", *BN_INPUTS], ["y"], name="bn"),
    ]
    before = model(convt, {"x": ["N", 3, 5, 5]}, ["y"], [weights("wt", (3, 2, 3, 3))] + batchnorm_params("bn", 6))
    after, changes = apply(before, FoldBatchNorm())
    assert changes[0].nodes_before == ("convt", "bn")
    assert_same_function(before, after, [{"x": (2, 3, 5, 5)}])
    for trans_b, shape in ((0, (8, 6)), (1, (6, 8))):
        gemm = [
            helper.make_node("Gemm", ["x", "wg", "bg"], ["g"], name="gemm", transB=trans_b, alpha=0.5, beta=2.0),
            helper.make_node("BatchNormalization", ["g", *BN_INPUTS], ["y"], name="bn"),
        ]
        before = model(
            gemm, {"x": ["N", 8]}, ["y"], [weights("wg", shape), weights("bg", (6,), 3)] + batchnorm_params("bn", 6)
        )
        after, changes = apply(before, FoldBatchNorm())
        assert [n.op_type for n in after.graph.node] == ["Gemm"]
        assert_same_function(before, after, [{"x": (3, 8)}])


def test_per_element_and_training_batchnorms_are_left_alone():
    import numpy as np
    from onnx import numpy_helper

    # Opset 8 with spatial=0: statistics per element [C, H, W], no per-channel scale exists.
    rng = np.random.default_rng(0)
    params = [
        numpy_helper.from_array(rng.uniform(0.5, 1.5, (4, 5, 5)).astype(np.float32), name)
        for name in ("g", "b", "m", "v")
    ]
    spatial = helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], name="bn", spatial=0)
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])
    old = model([conv, spatial], {"x": [1, 3, 5, 5]}, ["y"], [weights("w", (4, 3, 3, 3)), *params], opset=8)
    assert apply(old, FoldBatchNorm())[1] == []
    # training_mode=1 normalizes with the batch's own statistics.
    training = helper.make_node(
        "BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["y"], name="bn", training_mode=1
    )
    new = model(
        [conv, training], {"x": [2, 3, 5, 5]}, ["y"], [weights("w", (4, 3, 3, 3)), *batchnorm_params("bn", 4)], opset=15
    )
    assert apply(new, FoldBatchNorm())[1] == []

from onnx import helper

from tests.passes.helpers import apply, assert_same_function, model, weights
from trtc.passes.merge_siblings import MergeSiblings


def heads(strides=(1, 1, 1), bias=(True, False, True), outputs=("h0", "h1", "h2"), opset=17):
    nodes, inits = [helper.make_node("Relu", ["x"], ["f"], name="relu")], []
    for i, (stride, has_bias) in enumerate(zip(strides, bias)):
        inputs = ["f", f"w{i}"] + ([f"b{i}"] if has_bias else [])
        nodes.append(helper.make_node("Conv", inputs, [f"h{i}"], name=f"head{i}", strides=[stride, stride]))
        inits.append(weights(f"w{i}", (5 + i, 4, 1, 1), seed=i))
        if has_bias:
            inits.append(weights(f"b{i}", (5 + i,), seed=10 + i))
    return model(nodes, {"x": ["N", 4, "H", "W"]}, list(outputs), inits, opset)


def test_parallel_heads_become_one_conv_and_a_split():
    before = heads()
    after, changes = apply(before, MergeSiblings())
    assert [n.op_type for n in after.graph.node] == ["Relu", "Conv", "Split"]
    assert changes[0].nodes_before == ("head0", "head1", "head2")
    assert changes[0].nodes_after == ("head0+head1+head2", "head0+head1+head2/split")
    assert list(after.graph.node[2].output) == ["h0", "h1", "h2"]  # graph outputs keep their names
    assert "18 outputs" in changes[0].note
    assert_same_function(before, after, [{"x": (1, 4, 6, 6)}, {"x": (3, 4, 5, 9)}])
    assert apply(after, MergeSiblings())[1] == []


def test_split_with_attribute_before_opset_13():
    before = heads(opset=11)
    after, changes = apply(before, MergeSiblings())
    assert len(changes) == 1 and len(after.graph.node[2].input) == 1
    assert_same_function(before, after, [{"x": (2, 4, 3, 3)}])


def test_different_strides_do_not_merge():
    before = heads(strides=(1, 2, 1))
    after, changes = apply(before, MergeSiblings())
    assert [c.nodes_before for c in changes] == [("head0", "head2")]
    assert_same_function(before, after, [{"x": (1, 4, 6, 6)}])


def test_excluded_node_stays():
    before = heads()
    after, changes = apply(before, MergeSiblings(), exclude={"head1"})
    assert [c.nodes_before for c in changes] == [("head0", "head2")]


def test_matmul_and_gemm_siblings():
    nodes = [
        helper.make_node("MatMul", ["x", "m0"], ["y0"], name="mm0"),
        helper.make_node("MatMul", ["x", "m1"], ["y1"], name="mm1"),
        helper.make_node("Gemm", ["x2", "g0", "c0"], ["z0"], name="g0", transB=1),
        helper.make_node("Gemm", ["x2", "g1"], ["z1"], name="g1", transB=1),
    ]
    inits = [
        weights("m0", (8, 3)),
        weights("m1", (8, 5), 1),
        weights("g0", (4, 8), 2),
        weights("c0", (4,), 3),
        weights("g1", (6, 8), 4),
    ]
    before = model(nodes, {"x": ["B", "T", 8], "x2": ["N", 8]}, ["y0", "y1", "z0", "z1"], inits)
    after, changes = apply(before, MergeSiblings())
    assert sorted(c.nodes_before for c in changes) == [("g0", "g1"), ("mm0", "mm1")]
    assert_same_function(before, after, [{"x": (2, 3, 8), "x2": (5, 8)}])


def test_conv_with_non_constant_weight_is_left_alone():
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["h0"], name="a"),
        helper.make_node("Conv", ["x", "w1"], ["h1"], name="b"),
    ]
    before = model(nodes, {"x": [1, 4, 3, 3], "w1": [2, 4, 1, 1]}, ["h0", "h1"], [weights("w0", (2, 4, 1, 1))])
    assert apply(before, MergeSiblings())[1] == []


def test_siblings_whose_activation_tensorrt_would_fuse_stay_apart():
    # CSP-style branches: each 1x1 conv is followed by its own SiLU (Sigmoid * Mul). Merged, the
    # Split would sit between each conv and its activation and cost TensorRT those fusions.
    base = heads()
    silu = []
    for i in range(3):
        silu += [
            helper.make_node("Sigmoid", [f"h{i}"], [f"s{i}"], name=f"sig{i}"),
            helper.make_node("Mul", [f"h{i}", f"s{i}"], [f"a{i}"], name=f"silu{i}"),
        ]
    branches = model(
        [*base.graph.node, *silu], {"x": ["N", 4, "H", "W"]}, ["a0", "a1", "a2"], list(base.graph.initializer)
    )
    assert apply(branches, MergeSiblings())[1] == []
    # One branch with an activation: the other two still merge.
    one = model(
        [*base.graph.node, helper.make_node("Relu", ["h0"], ["r0"], name="act0")],
        {"x": ["N", 4, "H", "W"]},
        ["r0", "h1", "h2"],
        list(base.graph.initializer),
    )
    assert [c.nodes_before for c in apply(one, MergeSiblings())[1]] == [("head1", "head2")]

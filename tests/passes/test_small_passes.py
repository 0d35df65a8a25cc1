import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.passes.helpers import apply, assert_same_function, model, weights
from trtc.passes.fold_bias import FoldBiasAdd
from trtc.passes.fold_constants import FoldConstants
from trtc.passes.remove_noops import RemoveNoOps


def test_bias_add_folds_into_conv_gemm_and_matmul():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Add", ["c", "cb"], ["y"], name="add"),
        helper.make_node("MatMul", ["v", "m"], ["mm"], name="mm"),
        helper.make_node("Add", ["mb", "mm"], ["z"], name="add2"),
    ]
    inits = [
        weights("w", (4, 3, 1, 1)),
        weights("cb", (1, 4, 1, 1), 1),
        weights("m", (5, 6), 2),
        weights("mb", (6,), 3),
    ]
    before = model(nodes, {"x": ["N", 3, 4, 4], "v": ["N", 5]}, ["y", "z"], inits)
    after, changes = apply(before, FoldBiasAdd())
    assert [n.op_type for n in after.graph.node] == ["Conv", "Gemm"]
    assert [c.nodes_before for c in changes] == [("conv", "add"), ("mm", "add2")]
    assert_same_function(before, after, [{"x": (2, 3, 4, 4), "v": (2, 5)}])


def test_bias_that_varies_along_width_does_not_fold():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Add", ["c", "cb"], ["y"], name="add"),
    ]
    before = model(nodes, {"x": [1, 3, 4, 4]}, ["y"], [weights("w", (4, 3, 1, 1)), weights("cb", (4,), 1)])
    assert apply(before, FoldBiasAdd())[1] == []
    batched = model(
        [
            helper.make_node("MatMul", ["v", "m"], ["mm"], name="mm"),
            helper.make_node("Add", ["mm", "mb"], ["z"], name="add"),
        ],
        {"v": [2, 3, 5]},
        ["z"],
        [weights("m", (5, 6)), weights("mb", (6,), 1)],
    )
    assert apply(batched, FoldBiasAdd())[1] == []  # a 3-D MatMul is no Gemm


def test_constants_fold_but_large_expansions_do_not():
    shape = numpy_helper.from_array(np.array([2, 3], np.int64), "shape")
    big = numpy_helper.from_array(np.array([1024, 1024], np.int64), "big")
    nodes = [
        helper.make_node("Transpose", ["w"], ["wt"], name="transpose", perm=[1, 0]),
        helper.make_node("Reshape", ["wt", "shape"], ["w2"], name="reshape"),
        helper.make_node("Add", ["x", "w2"], ["y"], name="add"),
        helper.make_node("Expand", ["one", "big"], ["wide"], name="expand"),
        helper.make_node("ReduceSum", ["wide"], ["s"], name="sum", keepdims=0),
        helper.make_node("Add", ["y", "s"], ["out"], name="add2"),
    ]
    inits = [weights("w", (3, 2)), shape, big, numpy_helper.from_array(np.ones(1, np.float32), "one")]
    before = model(nodes, {"x": [2, 3]}, ["out"], inits)
    after, changes = apply(before, FoldConstants())
    assert [c.nodes_before for c in changes] == [("transpose",), ("reshape",)]
    assert "expand" in {n.name for n in after.graph.node}  # 4 MB from 4 bytes: left to the engine
    assert_same_function(before, after, [{"x": (2, 3)}])


def test_noops_and_dead_nodes_go_but_graph_outputs_stay():
    nodes = [
        helper.make_node("Identity", ["x"], ["a"], name="id"),
        helper.make_node("Dropout", ["a"], ["b"], name="drop"),
        helper.make_node("Cast", ["b"], ["c"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["c"], ["d"], name="t", perm=[0, 1]),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
        helper.make_node("Sigmoid", ["d"], ["unused"], name="dead"),
        helper.make_node("Identity", ["y"], ["out"], name="id_out"),
    ]
    before = model(nodes, {"x": [2, 3]}, ["out"])
    after, changes = apply(before, RemoveNoOps())
    assert [n.name for n in after.graph.node] == ["relu", "id_out"]
    assert [c.nodes_before[0] for c in changes] == ["id", "drop", "cast", "t", "dead"]
    assert_same_function(before, after, [{"x": (2, 3)}])


def test_dropout_in_training_mode_stays():
    ratio = numpy_helper.from_array(np.array(0.5, np.float32), "ratio")
    training = numpy_helper.from_array(np.array(True), "training")
    nodes = [helper.make_node("Dropout", ["x", "ratio", "training"], ["y"], name="drop", seed=1)]
    before = model(nodes, {"x": [2, 3]}, ["y"], [ratio, training])
    assert apply(before, RemoveNoOps())[1] == []


def test_constants_in_every_attribute_form_fold_and_leave_no_dead_constant_nodes():
    # Exporters write Constant as value_float / value_ints as often as value=tensor.
    nodes = [
        helper.make_node("Constant", [], ["scale"], name="c_scale", value_float=0.5),
        helper.make_node("Constant", [], ["new_shape"], name="c_shape", value_ints=[3, 2]),
        helper.make_node(
            "Constant", [], ["bias"], name="c_bias", value=numpy_helper.from_array(np.ones((3, 2), np.float32))
        ),
        helper.make_node("Mul", ["w", "scale"], ["ws"], name="mul"),
        helper.make_node("Reshape", ["ws", "new_shape"], ["w2"], name="reshape"),
        helper.make_node("Add", ["w2", "bias"], ["w3"], name="add_bias"),
        helper.make_node("Add", ["x", "w3"], ["y"], name="add"),
    ]
    before = model(nodes, {"x": [3, 2]}, ["y"], [weights("w", (2, 3))])
    after, changes = apply(before, FoldConstants())
    assert [n.name for n in after.graph.node] == ["add"]
    assert {c.nodes_before for c in changes if c.kind == "fold"} == {("mul",), ("reshape",), ("add_bias",)}
    assert {c.nodes_before for c in changes if c.kind == "remove"} == {("c_scale",), ("c_shape",), ("c_bias",)}
    assert_same_function(before, after, [{"x": (3, 2)}])

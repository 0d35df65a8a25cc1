"""Pinned inputs: the input leaves the engine, Ifs on it (nested too) become their taken branch."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import models
from trtc.errors import SpecError
from trtc.passes.pin import pin_inputs


def _branch(name, op, output):
    return helper.make_graph(
        [helper.make_node(op, ["x"], [output], name=f"{name}_{op.lower()}")],
        name,
        [],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
    )


def sample_rate_model():
    """y = relu(x) if sr == 16000 and sr > 8000, neg(x) if sr == 16000 otherwise, else sigmoid(x)."""
    inner = helper.make_node(
        "If",
        ["high"],
        ["inner_y"],
        name="inner_if",
        then_branch=_branch("hi", "Relu", "hi_y"),
        else_branch=_branch("lo", "Neg", "lo_y"),
    )
    then_branch = helper.make_graph(
        [inner], "then", [], [helper.make_tensor_value_info("inner_y", TensorProto.FLOAT, None)]
    )
    nodes = [
        helper.make_node("Equal", ["sr", "k16000"], ["is16k"], name="is16k"),
        helper.make_node("Greater", ["sr", "k8000"], ["high"], name="high"),
        helper.make_node(
            "If",
            ["is16k"],
            ["y"],
            name="outer_if",
            then_branch=then_branch,
            else_branch=_branch("other", "Sigmoid", "other_y"),
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "pin",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        initializer=[
            numpy_helper.from_array(np.array(16000, np.int64), "k16000"),
            numpy_helper.from_array(np.array(8000, np.int64), "k8000"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_pinning_resolves_nested_ifs_and_keeps_the_outputs():
    model = sample_rate_model()
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x, "sr": np.array(16000, np.int64)})[0]
    section = pin_inputs(model, {"sr": 16000})
    assert section["pinned_inputs"] == [{"input": "sr", "value": 16000}]
    assert section["resolved_control_flow"] == [
        {"node": "outer_if", "op_type": "If", "taken": "then_branch"},
        {"node": "outer_if/inner_if", "op_type": "If", "taken": "then_branch"},
    ]
    assert [i.name for i in model.graph.input] == ["x"]
    assert not any(n.op_type == "If" for n in model.graph.node)
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, expected)


def test_pinning_an_unknown_input_or_a_wrong_size_is_a_spec_error():
    with pytest.raises(SpecError, match="the model has no input 'rate'"):
        pin_inputs(sample_rate_model(), {"rate": 1})
    with pytest.raises(SpecError, match=r"declares shape \[\], the value has 2"):
        pin_inputs(sample_rate_model(), {"sr": [1, 2]})


def test_build_with_a_pinned_input(tmp_path):
    report = models.build_report(tmp_path, sample_rate_model(), "max_batch: 4\ninputs:\n  sr: {value: 8000}\n")
    assert report["pinning"]["pinned_inputs"] == [{"input": "sr", "value": 8000}]
    assert [r["taken"] for r in report["pinning"]["resolved_control_flow"]] == ["else_branch"]
    markdown = (tmp_path / "build" / "spec.report.md").read_text()
    assert "- `sr` = 8000" in markdown and "- `outer_if` (If): took the else branch" in markdown


def shape_driven_model():
    """Nested Ifs on x's shape: relu(x) if x has 8 columns and more than 2 rows, neg(x) if 8 columns, else sigmoid(x)."""
    inner = helper.make_node(
        "If",
        ["many_rows"],
        ["inner_y"],
        name="rows_if",
        then_branch=_branch("many", "Relu", "many_y"),
        else_branch=_branch("few", "Neg", "few_y"),
    )
    then_branch = helper.make_graph(
        [inner], "then", [], [helper.make_tensor_value_info("inner_y", TensorProto.FLOAT, None)]
    )
    nodes = [
        helper.make_node("Shape", ["x"], ["rows"], name="rows", start=0, end=1),
        helper.make_node("Shape", ["x"], ["cols"], name="cols", start=-1),
        helper.make_node("ReduceMax", ["rows"], ["rows_scalar"], name="rows_scalar", keepdims=0),
        helper.make_node("ReduceMax", ["cols"], ["cols_scalar"], name="cols_scalar", keepdims=0),
        helper.make_node("Equal", ["cols_scalar", "k8"], ["eight_cols"], name="eight_cols"),
        helper.make_node("Greater", ["rows_scalar", "k2"], ["many_rows"], name="many_rows"),
        helper.make_node(
            "If",
            ["eight_cols"],
            ["y"],
            name="cols_if",
            then_branch=then_branch,
            else_branch=_branch("other", "Sigmoid", "other_y"),
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "shapes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "C"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "C"])],
        initializer=[
            numpy_helper.from_array(np.array(8, np.int64), "k8"),
            numpy_helper.from_array(np.array(2, np.int64), "k2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_shape_driven_ifs_resolve_when_the_profile_fixes_the_shape():
    model = shape_driven_model()
    section = pin_inputs(model, {}, {"x": (1, 8)})
    assert section["resolved_control_flow"] == [
        {"node": "cols_if", "op_type": "If", "taken": "then_branch"},
        {"node": "cols_if/rows_if", "op_type": "If", "taken": "else_branch"},
    ]
    x = np.ones((1, 8), np.float32)
    assert ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0].tolist() == (-x).tolist()
    dynamic = shape_driven_model()
    assert pin_inputs(dynamic, {}, {})["resolved_control_flow"] == []
    assert sum(n.op_type == "If" for n in dynamic.graph.node) == 1


def test_build_resolves_shape_driven_ifs(tmp_path):
    report = models.build_report(tmp_path, shape_driven_model(), "inputs:\n  x: {shape: [4, 8]}\n")
    assert report["pinning"]["pinned_inputs"] == []
    assert [r["taken"] for r in report["pinning"]["resolved_control_flow"]] == ["then_branch", "then_branch"]

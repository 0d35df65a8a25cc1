"""Shape-driven Ifs folded under dynamic profiles, only where the condition is proven for every
shape in range (Silero VAD's "is `state` empty?" under a dynamic batch), never by sampling."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.cli_runner import run
from trtc.graph.reference import Reference
from trtc.passes.pin import pin_inputs


def _if_on(condition_nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
    """x [B, 4], state [2, B, 8]; `cond` from `condition_nodes`; then: -x, else: relu(x) + 1."""
    then_branch = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["then_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["relu"]), helper.make_node("Add", ["relu", "one"], ["else_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)],
    )
    nodes = [
        *condition_nodes,
        helper.make_node(
            "If", ["cond"], ["y"], name="state_is_empty", then_branch=then_branch, else_branch=else_branch
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "symbolic_if",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "B", 8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4])],
        initializer=[
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("zero", TensorProto.INT64, [], [0]),
            helper.make_tensor("four", TensorProto.INT64, [], [4]),
            helper.make_tensor("first", TensorProto.INT64, [], [0]),
            helper.make_tensor("sixteen", TensorProto.INT64, [], [16]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def state_is_empty() -> onnx.ModelProto:
    return _if_on(
        [
            helper.make_node("Size", ["state"], ["size"], name="size"),
            helper.make_node("Equal", ["size", "zero"], ["cond"], name="is_zero"),
        ]
    )


def batch_is_four() -> onnx.ModelProto:
    return _if_on(
        [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Gather", ["shape", "first"], ["batch"], axis=0),
            helper.make_node("Equal", ["batch", "four"], ["cond"], name="is_four"),
        ]
    )


def batch_below_sixteen() -> onnx.ModelProto:
    return _if_on(
        [
            helper.make_node("Shape", ["state"], ["shape"], start=1, end=2),
            helper.make_node("Squeeze", ["shape"], ["batch"]),
            helper.make_node("Mul", ["batch", "four"], ["scaled"]),
            helper.make_node("Less", ["scaled", "sixteen"], ["small"]),
            helper.make_node("Not", ["small"], ["cond"], name="not_small"),
        ]
    )


def _ranges(low: int, high: int) -> dict:
    return {"x": ((low, 4), (high, 4)), "state": ((2, low, 8), (2, high, 8))}


def _folded(model: onnx.ModelProto, low: int, high: int) -> tuple[onnx.ModelProto, list[dict]]:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    section = pin_inputs(copy, {}, {}, None, _ranges(low, high))
    return copy, section["resolved_control_flow"]


def test_an_if_on_the_size_of_state_folds_under_a_dynamic_batch_with_the_fact_that_decided_it():
    model = state_is_empty()
    folded, resolved = _folded(model, 1, 8)
    assert [n.op_type for n in folded.graph.node if n.op_type == "If"] == []
    assert resolved[0]["taken"] == "else_branch"
    assert "16*state[1]" in resolved[0]["proven"] and "state[1] in [1, 8]" in resolved[0]["proven"]
    assert "Equal 'is_zero'" in resolved[0]["proven"]
    for batch in (1, 4, 8):  # min, opt, max: onnxruntime agrees with the original
        rng = np.random.default_rng(batch)
        feeds = {
            "x": rng.standard_normal((batch, 4)).astype(np.float32),
            "state": rng.standard_normal((2, batch, 8)).astype(np.float32),
        }
        np.testing.assert_array_equal(Reference(model).run(feeds)["y"], Reference(folded).run(feeds)["y"])


@pytest.mark.parametrize(
    "model, low, high",
    [
        (state_is_empty, 0, 8),  # an empty state is in range: Size may be 0
        (batch_is_four, 1, 8),  # true at 4, false elsewhere: sampling min/opt/max could be fooled, a proof cannot
        (batch_below_sixteen, 2, 8),  # 4*B < 16 holds for 2 and 3, not for 4..8
    ],
)
def test_a_condition_that_does_not_hold_over_the_whole_range_stays(model, low, high):
    folded, resolved = _folded(model(), low, high)
    assert [n.name for n in folded.graph.node if n.op_type == "If"] == ["state_is_empty"]
    assert resolved == []


def test_comparisons_and_logic_on_shape_values_are_followed():
    folded, resolved = _folded(batch_below_sixteen(), 4, 8)  # 4*B >= 16: Not(Less) is true
    assert resolved[0]["taken"] == "then_branch"
    assert "4*state[1] < 16" in resolved[0]["proven"]


def test_a_dynamic_batch_build_of_a_state_driven_if(tmp_path):
    onnx.save(state_is_empty(), tmp_path / "model.onnx")
    (tmp_path / "spec.yaml").write_text(
        "model: model.onnx\n"
        "inputs:\n"
        "  x: {min: [1, 4], opt: [4, 4], max: [8, 4]}\n"
        "  state: {min: [2, 1, 8], opt: [2, 4, 8], max: [2, 8, 8]}\n"
        "target: {backend: tensorrt-rtx, compute_capabilities: [8.9]}\n"
        "output: {plan: out/m.plan, report: out/m.report.json}\n"
    )
    result = run("build", tmp_path / "spec.yaml")
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "out" / "m.report.md").read_text()
    assert "took the else branch, proven for every shape in the profiles" in markdown


def test_unnamed_nodes_of_an_inlined_branch_keep_distinct_names():
    """Silero VAD's branches hold unnamed Constants; named alike after inlining, constant folding
    took one for the other and TensorRT's parser found a weight missing."""
    constants = [
        helper.make_node(
            "Constant", [], [f"c{i}"], value=helper.make_tensor(f"v{i}", TensorProto.FLOAT, [4], [i + 1.0] * 4)
        )
        for i in range(2)
    ]
    then_branch = helper.make_graph(
        [*constants, helper.make_node("Mul", ["x", "c0"], ["m"]), helper.make_node("Add", ["m", "c1"], ["then_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["else_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Equal", ["sr", "rate"], ["cond"], name="is_16k"),
            helper.make_node("If", ["cond"], ["y"], name="by_rate", then_branch=then_branch, else_branch=else_branch),
        ],
        "unnamed",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        initializer=[helper.make_tensor("rate", TensorProto.INT64, [], [16000])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    pin_inputs(model, {"sr": 16000}, {"x": (2, 4)})
    assert len({n.name for n in model.graph.node}) == len(model.graph.node)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(Reference(model).run({"x": x})["y"], x * 1 + 2)

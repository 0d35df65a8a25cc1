"""Loops whose trip count a pinned input fixes: reported, and unrolled when small and safe, with
onnxruntime agreeing before and after."""

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tests import models
from trtc.passes.loops import onnxruntime_agreement
from trtc.passes.pin import pin_inputs


def loop_model(early_exit: bool = False):
    """v = x; repeat `steps` times: v = v * 0.5 + iteration; also stack sum(v) per iteration."""
    body_nodes = [
        helper.make_node("Cast", ["i"], ["i_f"], name="iteration_as_float", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["v_in", "half"], ["scaled"], name="scale"),
        helper.make_node("Add", ["scaled", "i_f"], ["v_out"], name="shift"),
        helper.make_node("ReduceSum", ["v_in"], ["total"], name="total", keepdims=0),
    ]
    if early_exit:
        body_nodes.append(helper.make_node("Less", ["total", "limit"], ["cond_out"], name="keep_going"))
    else:
        body_nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"))
    body = helper.make_graph(
        body_nodes,
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, []),
        ],
        initializer=[
            numpy_helper.from_array(np.array(0.5, np.float32), "half"),
            numpy_helper.from_array(np.array(1e9, np.float32), "limit"),
        ],
    )
    nodes = [helper.make_node("Loop", ["steps", "", "x"], ["y", "totals"], name="refine", body=body)]
    graph = helper.make_graph(
        nodes,
        "loop",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("steps", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("totals", TensorProto.FLOAT, ["K"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


X = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)


def test_a_pinned_trip_count_unrolls_the_loop_and_keeps_the_outputs():
    model = loop_model()
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": X, "steps": np.array(3, np.int64)})
    section = pin_inputs(model, {"steps": 3}, {}, onnxruntime_agreement({"x": X}))
    assert section["resolved_control_flow"] == [
        {"node": "refine", "op_type": "Loop", "trip_count": 3, "unrolled": True}
    ]
    assert not any(node.op_type == "Loop" for node in model.graph.node)
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"x": X})
    for want, have in zip(expected, got):
        np.testing.assert_allclose(have, want, rtol=1e-6)


def test_long_loops_and_early_exits_are_reported_and_kept():
    long = loop_model()
    assert pin_inputs(long, {"steps": 100}, {}, onnxruntime_agreement({"x": X}))["resolved_control_flow"] == [
        {
            "node": "refine",
            "op_type": "Loop",
            "trip_count": 100,
            "unrolled": False,
            "reason": "100 iterations (trtc unrolls 1 to 16)",
        }
    ]
    exits = loop_model(early_exit=True)
    assert (
        pin_inputs(exits, {"steps": 3}, {}, onnxruntime_agreement({"x": X}))["resolved_control_flow"][0]["reason"]
        == "its body computes an exit condition"
    )
    assert sum(node.op_type == "Loop" for node in exits.graph.node) == 1


def test_an_unrolling_onnxruntime_disagrees_with_is_undone():
    model = loop_model()
    section = pin_inputs(model, {"steps": 3}, {}, lambda before, after: "output 'y' changed values")
    assert section["resolved_control_flow"][0]["reason"] == "unrolled graph not kept: output 'y' changed values"
    assert sum(node.op_type == "Loop" for node in model.graph.node) == 1


def test_build_with_a_pinned_trip_count(tmp_path):
    report = models.build_report(tmp_path, loop_model(), "max_batch: 4\ninputs:\n  steps: {value: 3}\n")
    assert report["pinning"]["resolved_control_flow"] == [
        {"node": "refine", "op_type": "Loop", "trip_count": 3, "unrolled": True}
    ]
    assert "- `refine` (Loop): 3 iteration(s), unrolled" in (tmp_path / "build" / "spec.report.md").read_text()
    outputs = {b["name"]: b["dims"] for b in report["bindings"] if b["mode"] == "Output"}
    assert outputs == {"y": [-1, 4], "totals": [3]}

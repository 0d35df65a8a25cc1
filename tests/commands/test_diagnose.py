"""Issue 7 on real-shaped graphs: a builder failure that names no node is bisected to its
culprit, and a wrong declared output shape is exposed."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import models, trust_models
from tests.cli_runner import run

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

X_RANGE = "  x: {min: [10, 1, 4], opt: [10, 4, 4], max: [10, 8, 4]}\n"


def test_if_on_an_input_fails_in_tensorrt_and_trtc_names_it_and_the_remedy(tmp_path):
    result, _ = models.build(
        tmp_path, trust_models.if_on_scalar_input_around_lstm(), "inputs:\n" + X_RANGE + "  sr: {shape: []}\n"
    )
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("error:"))
    assert lines[first] == "error: TensorRT failed to build the engine; the failure starts at node 'choose_net' (If)"
    assert any("Assertion" in line for line in lines[first:])  # TensorRT's own message, which names no node
    assert any(line.startswith("  hint: If 'choose_net' depends on input(s) sr; pin them") for line in lines)
    skipped, _ = models.build(
        tmp_path,
        trust_models.if_on_scalar_input_around_lstm(),
        "inputs:\n" + X_RANGE + "  sr: {shape: []}\n",
        "--no-diagnose",
    )
    assert skipped.exit_code == 1 and "culprit" not in skipped.stderr


def test_a_wrong_declared_output_shape_is_exposed(tmp_path):
    result, report = models.build(tmp_path, trust_models.wrong_declared_output_shape(), "max_batch: 4\n")
    assert result.exit_code == 0, result.stderr
    row = report["output_shapes"]["outputs"][0]
    assert (row["declared"], row["onnxruntime"], row["tensorrt"]) == (["batch", 6, 4], [1, 4, 6], [-1, 4, 6])
    assert "warning: output 'y': the model declares ['batch', 6, 4] but onnxruntime produced [1, 4, 6]" in result.stderr


def long_graph_with_one_bad_node(length: int = 240, bad_at: int = 150) -> onnx.ModelProto:
    """A 240-node element-wise chain with one FP32 Gemm, which TensorRT-RTX cannot compile for sm 7.5."""
    nodes, x = [], "x"
    for i in range(length):
        if i == bad_at:
            nodes.append(helper.make_node("Gemm", [x, "w"], [f"t{i}"], name=f"node{i}", transB=1))
        else:
            nodes.append(helper.make_node("Relu" if i % 2 else "Sigmoid", [x], [f"t{i}"], name=f"node{i}"))
        x = f"t{i}"
    graph = helper.make_graph(
        nodes,
        "long",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 32])],
        initializer=[numpy_helper.from_array(np.eye(32, dtype=np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_the_localizer_pins_the_failing_node_of_a_long_graph_within_its_bound(tmp_path):
    models.save(long_graph_with_one_bad_node(), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path, "model: model.onnx\nmax_batch: 4\nfusion: {passes: none}\ntarget: {compute_capabilities: [7.5]}\n"
    )
    result = run("build", spec)
    assert result.exit_code == 1
    assert "error: TensorRT failed to build the engine; the failure starts at node 'node150' (Gemm)" in result.stderr
    builds = int(result.stderr.split("found by ")[1].split(" sub-builds")[0])
    assert builds <= 24
    assert "trtc: diagnosing the failure: bisecting the graph with sub-builds" in result.stderr


def test_an_lstm_that_tensorrt_unrolls_is_reported_as_more_traffic_not_negative_savings(tmp_path):
    # TensorRT runs the pinned model's LSTM as one kernel per time step: more memory traffic after
    # fusion than the one ONNX node had. The renderers must say so, not "saved -780%".
    result, report = models.build(
        tmp_path, trust_models.if_on_scalar_input_around_lstm(), "max_batch: 8\ninputs:\n  sr: {value: 16000}\n"
    )
    assert result.exit_code == 0, result.stderr
    cost = report["cost"]
    assert cost["after_fusion"]["mac_bytes"] > cost["before_fusion"]["mac_bytes"] and cost["mac_saved_percent"] < 0
    assert f"{-cost['mac_saved_percent']:.1f}% more after fusion" in result.stderr
    markdown = (tmp_path / "build" / "spec.report.md").read_text()
    assert "more after fusion" in markdown and "saved -" not in markdown and "(-" not in result.stderr


def gemm_beside_a_reshape_its_opt_shape_breaks() -> onnx.ModelProto:
    """a[N,32] -> Gemm (FP32: TensorRT-RTX cannot build it for sm 7.5) beside b[N,L] -> 6 activations
    -> Reshape to [N, 4, 8], which only L = 32 satisfies."""
    nodes = [helper.make_node("Gemm", ["a", "w"], ["g"], name="gemm", transB=1)]
    x = "b"
    for i in range(6):
        nodes.append(helper.make_node("Relu" if i % 2 else "Sigmoid", [x], [f"t{i}"], name=f"act{i}"))
        x = f"t{i}"
    nodes.append(helper.make_node("Reshape", [x, "target"], ["y"], name="reshape"))
    graph = helper.make_graph(
        nodes,
        "two_failures",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 32]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", "L"]),
        ],
        [
            helper.make_tensor_value_info("g", TensorProto.FLOAT, ["N", 32]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8]),
        ],
        initializer=[
            numpy_helper.from_array(np.eye(32, dtype=np.float32), "w"),
            numpy_helper.from_array(np.array([0, 4, 8], np.int64), "target"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("capability", ["7.5", "8.9"])
def test_a_node_tensorrt_names_is_the_culprit_not_a_sub_build_that_fails_otherwise(tmp_path, capability):
    """rapidocr's PP-OCRv4 recogniser with `trtc init`'s proposed opt shape (224x224): TensorRT named
    the Reshape whose constraint the opt shape breaks; the bisection blamed an earlier Conv, whose
    sub-build failed for another reason (out of workspace). Here an FP32 Gemm that sm 7.5 refuses
    plays that part."""
    models.save(gemm_beside_a_reshape_its_opt_shape_breaks(), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\ninputs:\n  a: {min: [1, 32], opt: [4, 32], max: [4, 32]}\n"
        "  b: {min: [1, 32], opt: [4, 40], max: [4, 64]}\n"
        f"fusion: {{passes: none}}\ntarget: {{compute_capabilities: [{capability}]}}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "error: TensorRT failed to build the engine; the failure starts at node 'reshape' (Reshape)" in lines
    assert "  culprit: node 'reshape' (Reshape), named in TensorRT's message" in lines
    assert not any("bisecting the graph" in line for line in lines)  # no sub-build ran
    assert (
        "  hint: profile 0's opt shapes break a shape constraint of the model (at node 'reshape'): "
        "give inputs: opt shapes the model runs at" in lines
    )
    assert not (tmp_path / "build").exists()


def test_bisection_counts_only_sub_builds_that_fail_the_same_way():
    """The same graph with TensorRT's message stripped of the layer's name (an assertion that names
    none): the sub-builds that fail on the Gemm (sm 7.5) fail otherwise and do not count."""
    from trtc.backend.builder import BuildSettings
    from trtc.backend.trt_import import import_tensorrt
    from trtc.commands.diagnose import localize
    from trtc.spec.model import ShapeRange

    settings = BuildSettings(
        profiles=[
            {"a": ShapeRange((1, 32), (4, 32), (4, 32)), "b": ShapeRange((1, 32), (4, 40), (4, 64))},
        ],
        compute_capabilities=("7.5",),
    )
    failure = (
        "IBuilder::buildSerializedNetwork: Error Code 4: Internal Error (kOPT values for profile 0 violate "
        "shape constraints: reshaping failed for tensor: t5 reshape would change volume 160 to 128)"
    )
    culprit = localize(import_tensorrt(), gemm_beside_a_reshape_its_opt_shape_breaks(), settings, failure=failure)
    assert culprit is not None and culprit.node.name == "reshape" and culprit.builds > 0

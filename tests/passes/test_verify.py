"""The verifier catches a broken pass on the user's model, names the pass and the change, drops
just that change, and builds; `verify: strict` stops instead."""

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import models
from tests.cli_runner import run
from tests.pass_registry import register_pass
from trtc.graph.graph_index import GraphIndex
from trtc.passes.base import Change

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


class DoubleOneWeight:
    """A deliberately broken 'fold': it doubles the weights of conv1 and claims nothing changed
    in function; it also makes a harmless change (renaming relu0's node) that must survive."""

    name = "broken-fold"
    description = "test double"

    def run(self, model, context):
        changes = []
        index = GraphIndex(model.graph)
        for node in model.graph.node:
            if node.name == "conv1" and "conv1" not in context.exclude and not node.input[1].endswith(".doubled"):
                doubled = index.add_initializer("w1.doubled", index.constant(node.input[1]) * 2)
                node.input[1] = doubled
                changes.append(Change(self.name, "fold", ("conv1",), ("conv1",), "pretends to fold"))
        return changes


def test_broken_pass_is_caught_named_and_dropped(tmp_path, monkeypatch):
    register_pass(monkeypatch, "broken-fold", DoubleOneWeight)
    models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\nfusion: {passes: [fold-batchnorm, broken-fold]}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    assert (
        "warning: verification: dropped the broken-fold change on conv1: it changed the outputs (output 'y' differs"
        in result.stderr
    )
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert report["verification"]["status"] == "repaired"
    assert [d["pass"] for d in report["verification"]["dropped_changes"]] == ["broken-fold"]
    assert [c["pass_name"] for c in report["passes"]["changes"]] == ["fold-batchnorm"]  # the good fold stayed
    strict = run("build", spec, "--set", "fusion.verify=strict")
    assert strict.exit_code == 1
    assert "error: graph passes changed the model's outputs (output 'y' differs: relative L2 error" in strict.stderr


def bf16_model():
    """Runs in TensorRT, not in onnxruntime's CPU kernels (no BF16 Relu there)."""
    nodes = [
        helper.make_node("Cast", ["x"], ["b"], name="to_bf16", to=TensorProto.BFLOAT16),
        helper.make_node("Identity", ["b"], ["i"], name="noop"),
        helper.make_node("Relu", ["i"], ["r"], name="relu"),
        helper.make_node("Cast", ["r"], ["y"], name="to_fp32", to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "bf16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_model_onnxruntime_cannot_run_is_not_verified_and_says_why(tmp_path):
    models.save(bf16_model(), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert report["verification"]["status"] == "not verified"
    assert report["verification"]["reason"].startswith("onnxruntime cannot")
    assert "warning: graph passes not verified: onnxruntime cannot" in result.stderr
    off = run("build", spec, "--set", "fusion.verify=off")
    assert off.exit_code == 0 and "verification" not in json.loads(
        (tmp_path / "build" / "spec.report.json").read_text()
    )


def test_onnxruntime_run_failures_are_said_once_by_trtc_not_by_onnxruntime_logger(tmp_path, capfd):
    # Reflect padding of 2 needs 3 values; the min shape has 1: onnxruntime fails at run time.
    pads = numpy_helper.from_array(np.array([0, 2, 0, 2], np.int64), "pads")
    nodes = [
        helper.make_node("Identity", ["x"], ["x1"], name="noop"),  # gives the passes a change to verify
        helper.make_node("Pad", ["x1", "pads"], ["y"], name="pad", mode="reflect"),
    ]
    graph = helper.make_graph(
        nodes,
        "pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "L"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", None])],
        [pads],
    )
    models.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\ninputs: {x: {min: [1, 1], opt: [1, 8], max: [1, 16]}}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert "warning: graph passes not verified: onnxruntime cannot run the model" in result.stderr, result.stderr
    assert "onnxruntime:" not in capfd.readouterr().err  # onnxruntime's own coloured log line (written to fd 2)


def test_the_opt_shape_is_checked_within_the_budget_and_full_checks_every_shape(tmp_path, monkeypatch):
    models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 4\ntarget: {compute_capabilities: [8.9]}\n")

    def verification(*args):
        result = run("build", spec, "--force", *args)
        assert result.exit_code == 0, result.stderr
        return json.loads((tmp_path / "build" / "spec.report.json").read_text())["verification"]

    default = verification()
    assert default["status"] == "verified" and default["checked_shapes"] == ["min of profile 0", "opt of profile 0"]
    import trtc.passes.verify_step

    monkeypatch.setattr(
        trtc.passes.verify_step, "predicted_build_seconds", lambda model: 0.0
    )  # a build that takes no time
    tight = verification()
    assert tight["checked_shapes"] == ["min of profile 0"]
    assert tight["reason"].startswith("opt shape skipped: predicted") and tight["reason"].endswith(
        "budget 0.00 s (fusion.verify: full checks it)"
    )
    full = verification("--set", "fusion.verify=full")
    assert full["checked_shapes"] == ["min of profile 0", "opt of profile 0", "max of profile 0"]

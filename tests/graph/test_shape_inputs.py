"""Shape-tensor inputs (their values become a shape): detected, their values required in the
spec, passed to TensorRT's profile (set_shape_input), and fed to onnxruntime's checks."""

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import models
from tests.cli_runner import run
from trtc.graph.shape_inputs import shape_tensor_inputs

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


def _model(nodes, inputs, initializers=()):
    graph = helper.make_graph(
        nodes,
        "shape_input",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def reshape_by_input():
    """x[N, 24] reshaped to the input `shape` (int64 [3]), through an Identity the passes remove."""
    return _model(
        [
            helper.make_node("Identity", ["shape"], ["s"], name="noop"),
            helper.make_node("Reshape", ["x", "s"], ["r"], name="reshape"),
            helper.make_node("Relu", ["r"], ["y"], name="relu"),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 24]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [3]),
        ],
    )


def zeros_of_input_dims():
    """ConstantOfShape of an int32 input `dims` [2], cast to int64 first."""
    return _model(
        [
            helper.make_node("Cast", ["dims"], ["d64"], name="to_int64", to=TensorProto.INT64),
            helper.make_node(
                "ConstantOfShape",
                ["d64"],
                ["z"],
                name="fill",
                value=numpy_helper.from_array(np.array([1.5], np.float32)),
            ),
            helper.make_node("Relu", ["z"], ["y"], name="relu"),
        ],
        [helper.make_tensor_value_info("dims", TensorProto.INT32, [2])],
    )


def test_detection_follows_shape_arithmetic_and_ignores_data_inputs():
    assert shape_tensor_inputs(reshape_by_input()) == {"shape": "input 1 of Reshape 'reshape'"}
    assert shape_tensor_inputs(zeros_of_input_dims()) == {"dims": "input 0 of ConstantOfShape 'fill'"}
    ids = _model(
        [helper.make_node("Gather", ["table", "ids"], ["y"], name="embed")],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["T"])],
        [numpy_helper.from_array(np.ones((10, 4), np.float32), "table")],
    )
    assert shape_tensor_inputs(ids) == {}


def _build(tmp_path, model, spec_text):
    models.save(model, tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\n" + spec_text + "target: {compute_capabilities: [8.9]}\n")
    return run("build", spec)


def test_a_reshape_target_input_builds_with_its_values_and_is_verified_at_them(tmp_path):
    result = _build(
        tmp_path,
        reshape_by_input(),
        "max_batch: 8\ninputs:\n  shape: {values: {min: [1, 4, 6], opt: [8, 4, 6], max: [8, 4, 6]}}\n",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert report["profiles"][0]["shape"]["values"] == {"min": [1, 4, 6], "opt": [8, 4, 6], "max": [8, 4, 6]}
    assert report["verification"]["status"] == "verified"
    assert report["verification"]["checked_shapes"] == ["min of profile 0", "opt of profile 0"]
    assert report["output_shapes"]["outputs"][0]["onnxruntime"] == [1, 4, 6]  # run at the min values
    bindings = {b["name"]: b for b in report["bindings"]}
    assert bindings["shape"]["dtype"] == "Int64" and bindings["y"]["dims"] == [-1, 4, 6]


def test_a_value_range_serves_every_element(tmp_path):
    result = _build(tmp_path, zeros_of_input_dims(), "inputs:\n  dims: {range: [1, 16]}\n")
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert report["profiles"][0]["dims"]["values"] == {"min": [1, 1], "opt": [16, 16], "max": [16, 16]}
    assert report["bindings"][-1]["dims"] == [-1, -1]


@pytest.mark.parametrize(
    "spec_text, message",
    [
        (
            "max_batch: 8\n",
            "error: inputs.shape: its values are a shape (input 1 of Reshape 'reshape'), and TensorRT builds for a "
            "range of them; give inputs: {shape: {values: {min: [...], opt: [...], max: [...]}}} (3 value(s) each), "
            "or pin it with value: [...]",
        ),
        (
            "max_batch: 8\ninputs:\n  shape: {values: {min: [1, 24], max: [8, 24]}}\n",
            "error: inputs.shape.values.min: the input has shape [3], so 3 value(s); got 2",
        ),
        (
            "max_batch: 8\ninputs:\n  shape: {values: {min: [8, 4, 6], max: [1, 4, 6]}}\n",
            "inputs.shape.values: value 0 must satisfy min <= opt <= max; got 8, 1, 1",
        ),
    ],
)
def test_missing_or_wrong_values_are_one_line_spec_errors(tmp_path, spec_text, message):
    result = _build(tmp_path, reshape_by_input(), spec_text)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not (tmp_path / "build").exists()


def test_tensorrt_names_a_shape_input_that_trtc_did_not_detect(tmp_path):
    # Clip is not shape arithmetic trtc follows; TensorRT still takes `shape` as a shape tensor.
    model = _model(
        [
            helper.make_node("Clip", ["shape", "floor"], ["s"], name="at_least_one"),
            helper.make_node("Reshape", ["x", "s"], ["r"], name="reshape"),
            helper.make_node("Relu", ["r"], ["y"], name="relu"),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 24]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [3]),
        ],
        [numpy_helper.from_array(np.array(1, np.int64), "floor")],
    )
    assert shape_tensor_inputs(model) == {}
    result = _build(tmp_path, model, "max_batch: 8\n")
    assert result.exit_code == 2, result.stderr
    assert "error: inputs.shape: TensorRT uses this input's values as a shape" in result.stderr


def test_fp16_checks_run_at_the_shape_inputs_values(tmp_path):
    result = _build(
        tmp_path,
        reshape_by_input(),
        "max_batch: 8\nprecision: fp16\ninputs:\n  shape: {values: {min: [1, 4, 6], opt: [8, 4, 6], max: [8, 4, 6]}}\n",
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert report["accuracy"]["source"].startswith("random inputs at the opt shape")
    assert report["accuracy"]["outputs"][0]["samples"] > 0

"""`max_batch` finds the batch dimension by name and position: not only dimension 0."""

import json

import pytest
from onnx import TensorProto, helper

from tests import models, trust_models
from tests.cli_runner import run
from trtc.graph.batch_dim import BatchAxis, batch_axes

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


@pytest.mark.parametrize(
    "dims, axis",
    [
        (["batch", 3, 16, 16], 0),
        (["N", 3, "H", "W"], 0),
        ([10, "batch_size", 4], 1),  # sequence-first
        ([1, "batch", 80], 1),  # static 1 first, the batch second
        (["seq", "batchSize", 512], 1),  # a dynamic sequence first, the batch second
        (["unk__214", 8], 0),  # tf2onnx placeholder: a leading dynamic dim
        (["?", 8], 0),  # unnamed leading dynamic dim
        (["s0", 3, 224, 224], 0),  # torch.export's symbol names
        ([], None),  # a scalar (sample rate): no batch
        ([2, 64], None),  # a static table
        (["T", 8], None),  # a time dimension is not a batch
    ],
)
def test_batch_axis_of_one_input(dims, axis):
    assert batch_axes([("x", dims)]) == {"x": BatchAxis(axis)}


def test_a_leading_placeholder_is_the_batch_wherever_its_name_appears_again():
    found = batch_axes([("tokens", ["seq", "unk__7"]), ("mask", ["unk__7", "seq"]), ("sr", [])])
    assert found == {"tokens": BatchAxis(1), "mask": BatchAxis(0), "sr": BatchAxis(None)}


def test_an_unnamed_dynamic_dimension_behind_a_static_one_is_ambiguous():
    found = batch_axes([("features", [1, "?", 80])])["features"]
    assert found.axis is None and found.ambiguous == "dynamic dimension 1 ('?') may or may not be the batch"


def _seq_first_with_scalar_gain():
    """x[1, batch, 8] * gain[] -> y: a sequence-first input and a scalar input without a batch."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "gain"], ["y"], name="scale")],
        "seq_first",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "batch", 8]),
            helper.make_tensor_value_info("gain", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "batch", 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _bindings(tmp_path, model, spec_text):
    result, report = models.build(tmp_path, model, spec_text)
    assert result.exit_code == 0, result.stderr
    return {b["name"]: b["profiles"][0] for b in report["bindings"] if b["mode"] == "Input"}, result


def test_max_batch_ranges_the_second_dimension_of_a_sequence_first_input_and_leaves_a_scalar_alone(tmp_path):
    bindings, result = _bindings(tmp_path, _seq_first_with_scalar_gain(), "max_batch: 4\n")
    assert bindings["x"] == {"min": [1, 1, 8], "opt": [1, 4, 8], "max": [1, 4, 8]}
    assert bindings["gain"] == {"min": [], "opt": [], "max": []}
    assert "warning" not in result.stderr


def test_max_batch_on_a_sequence_first_lstm_with_a_pinned_sample_rate(tmp_path):
    bindings, _ = _bindings(
        tmp_path, trust_models.if_on_scalar_input_around_lstm(), "max_batch: 8\ninputs:\n  sr: {value: 16000}\n"
    )
    assert bindings == {"x": {"min": [10, 1, 4], "opt": [10, 8, 4], "max": [10, 8, 4]}}


def test_an_ambiguous_input_is_one_line_naming_it_and_asking_for_shapes(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["features"], ["y"], name="relu")],
        "ambiguous",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, "?", 80])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    models.save(model, tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 4\n")
    result = run("build", spec)
    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error")] == [
        "error: max_batch: cannot tell which dimension of input features[1,?,80] float32 is the batch "
        "(dynamic dimension 1 ('?') may or may not be the batch); give its shapes: "
        "inputs: {features: {min: [...], opt: [...], max: [...]}}"
    ]
    assert not (tmp_path / "build").exists()
    explicit = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\ninputs:\n  features: {min: [1, 1, 80], max: [1, 50, 80]}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    assert run("build", explicit).exit_code == 0


def test_init_writes_max_batch_for_a_sequence_first_input_and_the_spec_builds(tmp_path):
    model = models.save(_seq_first_with_scalar_gain(), tmp_path / "model.onnx")
    result = run("init", model, "-o", tmp_path / "model.yaml")
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "model.yaml").read_text()
    assert "\nmax_batch: 32\n" in text and "dimension 1 from max_batch: 1 .. 32" in text
    assert run("build", tmp_path / "model.yaml").exit_code == 0
    report = json.loads((tmp_path / "build" / "model.report.json").read_text())
    assert report["bindings"][0]["profiles"] == [{"min": [1, 1, 8], "opt": [1, 32, 8], "max": [1, 32, 8]}]

"""auto_fallback on graphs where keeping a layer back changes which tensors need a range."""

import pytest
from onnx import helper

from tests import models
from tests.cli_runner import run
from tests.passes.helpers import model, weights
from tests.precision.test_quantization import report_of

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


def two_branch_sum():
    """y = conv_a(x) + conv_b(x): both Add operands come straight from quantized layers, so no
    residual Q/DQ is planned until auto_fallback keeps one of the convolutions back."""
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "wb"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]
    return model(nodes, {"x": [4, 8, 16, 16]}, ["y"], [weights("wa", (8, 8, 3, 3)), weights("wb", (8, 8, 3, 3))])


def test_auto_fallback_keeping_one_side_of_an_add_back(tmp_path):
    models.save(two_branch_sum(), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nprecision: {mode: int8, auto_fallback: true, "
        "calibration: {data: random, samples: 8, batch: 4}}\naccuracy: {min_cosine: 0.99995}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    calibration = report_of(spec)["calibration"]
    # Full INT8 misses the gate (cosine 0.999936 here), one convolution back meets it; the Add then
    # reads the kept-back side through a Q/DQ of its own, whose range the first calibration took.
    assert calibration["auto_fallback"]["kept_back"] == ["conv_a"]
    assert calibration["residual_inputs"] == ["a"] and calibration["quantized_layers"] == ["conv_b"]

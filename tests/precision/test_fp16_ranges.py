"""The FP16 range rules (what overflows FP16 and stays FP32) read every sample the precision step
has, not the first one: a layer that overflows only on a later sample stays FP32, and the report
says on how many samples of what kind the ranges were taken. Real onnxruntime runs and
TensorRT-RTX builds."""

import json

import numpy as np
import pytest

from tests import models
from tests.cli_runner import run
from tests.precision.test_fallback_safety import overflowing_between_quantized_convolutions
from trtc.graph.reference import Reference, with_outputs

TARGET = "target: {compute_capabilities: [8.9]}\n"


def squarer():
    """square overflows FP16 (|x| > 65504) once the input is a few hundred, and stays far inside
    it for inputs near 1."""
    return overflowing_between_quantized_convolutions(scale=0.3)


def tame_first_then_large(folder, count=16, loud=(5,)):
    """`count` one-sample files; the first is tame, those at `loud` overflow FP16 in `square`."""
    (folder / "data").mkdir()
    rng = np.random.default_rng(1)
    for index in range(count):
        scale = 300.0 if index in loud else 1.0
        np.save(folder / "data" / f"s{index:02d}.npy", (rng.standard_normal((1, 3, 16, 16)) * scale).astype(np.float32))


def build(folder, precision, *args):
    models.save(squarer(), folder / "model.onnx")
    spec = models.write_spec(folder, "model: model.onnx\nmax_batch: 4\n" + precision + TARGET)
    result = run("build", spec, *args)
    assert result.exit_code == 0, result.stderr
    return result, json.loads((folder / "build" / "spec.report.json").read_text())


def assert_square_kept(report):
    kept = report["precision"]["kept_fp32"]
    assert kept["square"].startswith("output reaches |x| = "), kept


@pytest.mark.build
def test_fp16_takes_ranges_on_every_accuracy_sample(tmp_path):
    tame_first_then_large(tmp_path)
    result, report = build(tmp_path, "precision: fp16\naccuracy: {data: data, samples: 16}\n")
    assert_square_kept(report)
    ranges = report["precision"]["activation_ranges"]
    assert (ranges["samples"], ranges["kind"]) == (16, "real")
    assert ranges["source"].startswith("accuracy.data: 16 npy file(s)")
    assert not any(o["nonfinite"] for o in report["accuracy"]["outputs"])
    assert "clearly off" not in result.stderr
    markdown = (tmp_path / "build" / "spec.report.md").read_text()
    assert "FP16 range rules read the activations of 16 real samples" in markdown


@pytest.mark.build
def test_fp16_without_data_says_its_ranges_come_from_random_samples(tmp_path):
    _, report = build(tmp_path, "precision: fp16\naccuracy: {samples: 8}\n")
    ranges = report["precision"]["activation_ranges"]
    assert (ranges["samples"], ranges["kind"]) == (8, "random")
    assert report["precision"]["kept_fp32"] == {}  # random inputs near 1 overflow nothing


@pytest.mark.build
def test_int8_fp16_fallback_takes_ranges_on_every_calibration_sample_and_caches_them(tmp_path):
    tame_first_then_large(tmp_path)
    calibration = "calibration: {data: data, samples: 16, batch: 4, cache: build/calib.json}"
    int8 = f"precision: {{mode: int8, {calibration}}}\n"
    _, report = build(tmp_path, int8)
    assert_square_kept(report)
    ranges = report["precision"]["activation_ranges"]
    assert (ranges["samples"], ranges["kind"]) == (16, "real")
    assert ranges["source"] == report["calibration"]["data"]
    # A cache hit brings the ranges back without a run; a cache made for an FP32 fallback has none.
    _, again = build(tmp_path, int8, "--force")
    assert again["calibration"]["cache"] == "hit" and again["precision"] == report["precision"]
    build(tmp_path, f"precision: {{mode: int8, fallback: fp32, {calibration}}}\n")
    result, back = build(tmp_path, int8)
    assert "warning: precision.calibration.cache: stale: " in result.stderr
    assert "was made for another fallback precision" in result.stderr
    assert_square_kept(back)


def test_ranges_are_the_largest_value_over_every_batch_in_both_runs_that_take_them():
    """The FP16 path's own runs and calibration's runs (the INT8/FP8 fallback) find the same."""
    from trtc.precision.calibrate import collect_ranges
    from trtc.precision.magnitudes import LargestValues, reference_magnitudes

    graph = squarer()
    rng = np.random.default_rng(2)
    batches = [{"x": (rng.standard_normal((2, 3, 16, 16)) * scale).astype(np.float32)} for scale in (1, 300, 3)]
    names = ["a", "r", "squared", "s", "y"]
    runner = Reference(with_outputs(graph, names))
    expected = {name: max(float(np.abs({**b, **runner.run(b)}[name]).max()) for b in batches) for name in ["x", *names]}
    found = reference_magnitudes(graph, iter(batches))
    assert found.largest == pytest.approx(expected, rel=1e-6) and found.samples == 6
    in_calibration = LargestValues()
    collect_ranges(graph, ["x", "s"], iter(batches), "minmax", largest=in_calibration)
    assert in_calibration.largest == pytest.approx(expected, rel=1e-6) and in_calibration.samples == 6


def test_ranges_skip_integer_and_empty_tensors():
    from onnx import helper, numpy_helper

    from tests.passes.helpers import model
    from trtc.precision.magnitudes import reference_magnitudes

    bounds = [numpy_helper.from_array(np.array([v], np.int64), n) for n, v in (("zero", 0), ("one", 1))]
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Slice", ["x", "one", "one"], ["none"], name="empty"),  # rows 1..1: no values
        helper.make_node("Reshape", ["x", "shape"], ["same"], name="reshape"),
        helper.make_node("Relu", ["same"], ["y"], name="relu"),
    ]
    graph = model(nodes, {"x": ["N", 4]}, ["y", "none"], bounds)
    found = reference_magnitudes(graph, [{"x": np.array([[-3, 1, 2, 0.5]], np.float32)}])
    assert found.largest == {"x": 3.0, "same": 3.0, "y": 2.0}

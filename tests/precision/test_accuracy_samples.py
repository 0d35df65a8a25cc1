"""Accuracy figures that mean something: measured on enough held-out samples or not at all, with
the pooled figure, the per-sample mean and worst case, and how many samples of what kind. Real
calibration runs and TensorRT-RTX builds."""

import json

import numpy as np
import pytest

from tests import models
from tests.cli_runner import run, snapshot
from trtc.errors import SpecError
from trtc.precision.accuracy import enforce, measure_accuracy
from trtc.report.diff import check_thresholds, diff_reports, parse_threshold

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

TARGET = "target: {compute_capabilities: [8.9]}\n"


def calibration_files(folder, files, per_file=1, scale=1.0):
    (folder / "calib").mkdir()
    rng = np.random.default_rng(5)
    for index in range(files):
        np.save(
            folder / "calib" / f"s{index:02d}.npy",
            (rng.standard_normal((per_file, 3, 16, 16)) * scale).astype(np.float32),
        )


def spec_with(folder, text):
    models.save(models.conv_bn_relu(), folder / "model.onnx")
    return models.write_spec(folder, "model: model.onnx\nmax_batch: 4\n" + text + TARGET)


def report_of(spec):
    return json.loads((spec.parent / "build" / f"{spec.stem}.report.json").read_text())


def test_the_minimum_is_a_documented_constant():
    from trtc.precision.accuracy import MIN_ACCURACY_SAMPLES

    assert MIN_ACCURACY_SAMPLES == 8


def test_no_figure_is_computed_from_no_samples():
    model = models.conv_bn_relu()
    assert measure_accuracy(model, model, []) == []  # not a cosine of 1.0
    with pytest.raises(SpecError):
        enforce([], {"min_cosine": 0.9}, "int8")  # a gate with nothing measured cannot pass


def test_a_broken_sample_does_not_hide_in_the_pooled_figure():
    from onnx import helper

    from tests.passes.helpers import model
    from trtc.precision.accuracy import as_dicts, clearly_off

    reference = model([helper.make_node("Identity", ["x"], ["y"], name="same")], {"x": ["N", 16]}, ["y"])
    converted = model([helper.make_node("Abs", ["x"], ["y"], name="abs")], {"x": ["N", 16]}, ["y"])
    x = np.full((8, 16), 100.0, np.float32)
    x[5] = -0.1  # one sample of small values whose sign the converted model loses
    (result,) = measure_accuracy(reference, converted, [{"x": x[:4]}, {"x": x[4:]}])
    assert result.samples == 8 and result.cosine > 0.99999  # the pool hides it
    assert result.sample_cosine_worst == pytest.approx(-1.0) and result.sample_cosine_mean == pytest.approx(0.75)
    assert clearly_off(as_dicts([result])) == ["output 'y': cosine 1.0000, worst sample -1.0000"]


def test_a_gate_with_too_few_held_out_calibration_samples_is_a_spec_error(tmp_path):
    calibration_files(tmp_path, 4)
    spec = spec_with(
        tmp_path, "precision: {mode: int8, calibration: {data: calib}}\naccuracy: {min_cosine: 0.99999999}\n"
    )
    before = snapshot(tmp_path)
    result = run("build", spec)
    assert result.exit_code == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: accuracy.min_cosine: a gate needs at least 8 samples to measure; the calibration data holds out 1 "
        "(every 4th of its 4 samples): give 32 or more calibration samples, or accuracy.data with 8 or more"
    ]
    assert snapshot(tmp_path) == before
    checked = run("check", spec)  # `trtc check` finds it too, without building
    assert checked.exit_code == 2 and errors[0] in checked.stderr


@pytest.mark.parametrize(
    "accuracy,message",
    [
        (
            "{data: calib, max_rel_l2: 0.1}",
            "accuracy.max_rel_l2: a gate needs at least 8 samples to measure; accuracy.data holds 3: "
            "add samples to accuracy.data",
        ),
        (
            "{samples: 4, min_cosine: 0.9}",
            "accuracy.min_cosine: a gate needs at least 8 samples to measure; accuracy.samples is 4: "
            "raise accuracy.samples to 8 or more",
        ),
    ],
)
def test_a_gate_on_too_few_accuracy_samples_is_a_spec_error(tmp_path, accuracy, message):
    calibration_files(tmp_path, 3)
    spec = spec_with(tmp_path, f"precision: fp16\naccuracy: {accuracy}\n")
    result = run("build", spec)
    assert result.exit_code == 2, result.stderr
    assert f"error: {message}" in result.stderr.splitlines()


def test_default_int8_measures_on_real_held_out_samples_with_pooled_mean_and_worst(tmp_path):
    calibration_files(tmp_path, 4, per_file=8)  # 32 real samples: 24 calibrate, every 4th is held out
    spec = spec_with(tmp_path, "precision: {mode: int8, calibration: {data: calib}}\n")
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    report = report_of(spec)
    assert report["calibration"]["samples"] == 24
    accuracy = report["accuracy"]
    assert (accuracy["status"], accuracy["samples"], accuracy["kind"]) == ("measured", 8, "real")
    assert accuracy["source"].startswith("every 4th sample of 4 npy file(s)")
    (output,) = accuracy["outputs"]
    assert output["samples"] == 8
    assert output["sample_cosine_worst"] <= output["sample_cosine_mean"] <= 1.0
    assert output["sample_cosine_worst"] > 0.99
    assert "  accuracy vs FP32 on 8 real samples held out from calibration (emulated): y: cosine " in result.stderr
    assert "per sample mean " in result.stderr and ", worst " in result.stderr
    markdown = (tmp_path / "build" / "spec.report.md").read_text()
    assert "Measured in onnxruntime on 8 real samples\\, held out from calibration: every 4th sample of " in markdown
    assert (
        "| output | max abs error | relative L2 | cosine | per-sample mean | worst sample | top-1 agreement |"
        in markdown
    )


def test_too_few_samples_without_a_gate_warns_that_accuracy_was_not_measured(tmp_path):
    calibration_files(tmp_path, 4)
    spec = spec_with(tmp_path, "precision: {mode: int8, calibration: {data: calib}}\n")
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    warning = (
        "warning: int8 accuracy was NOT measured: the calibration data holds out 1 (every 4th of its 4 samples), fewer "
        "than the 8 a figure needs; give 32 or more calibration samples, or accuracy.data with 8 or more"
    )
    assert warning in result.stderr
    assert "cosine" not in result.stderr
    assert "  accuracy vs FP32: NOT MEASURED" in result.stderr
    report = report_of(spec)
    accuracy = report["accuracy"]
    assert accuracy["status"] == "not measured" and accuracy["outputs"] == []
    assert accuracy["reason"].startswith("the calibration data holds out 1 (every 4th of its 4 samples)")
    assert report["calibration"]["samples"] == 4  # nothing held out for nothing: calibration uses every sample
    assert "Not measured: the calibration data holds out 1" in (tmp_path / "build" / "spec.report.md").read_text()
    assert "not measured" in (tmp_path / "build" / "spec.report.html").read_text()
    diff = diff_reports(report, report)
    assert diff["metrics"]["accuracy"]["new"] is None and diff["accuracy"] == []
    with pytest.raises(Exception) as caught:
        check_thresholds(diff, [parse_threshold("accuracy=-0.001")])
    assert "accuracy was not measured" in str(caught.value)


def test_diff_reads_no_figure_from_an_old_report_measured_on_zero_samples():
    old = {
        "schema": "trtc.report/1",
        "build": {},
        "precision": {"mode": "int8"},
        "accuracy": {"samples": 0, "outputs": [{"name": "y", "samples": 0, "cosine": 1.0, "rel_l2_error": 0.0}]},
    }
    diff = diff_reports(old, old)
    assert diff["metrics"]["accuracy"]["old"] is None and diff["accuracy"] == []


def test_a_failed_gate_prints_its_figure_with_the_digits_that_show_it_fails():
    from trtc.precision.accuracy import below

    assert below(0.99999990, 0.99999999) == "0.9999999"
    assert below(0.9876, 0.999) == "0.9876"
    assert float(below(0.99999999999, 0.999999999999)) < 0.999999999999

"""The build time trtc prints is the whole build's, with TensorRT's part named: an INT8 build that
spent most of its time calibrating must not read as built in TensorRT's seconds."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests import models
from tests.passes.helpers import model, weights
from trtc.report.units import build_time

pytestmark = pytest.mark.build


def test_the_printed_build_time_is_the_whole_build_and_names_tensorrts_part(tmp_path):
    from onnx import helper

    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])
    (tmp_path / "calib").mkdir()
    np.save(
        tmp_path / "calib" / "batch.npy", np.random.default_rng(0).standard_normal((8, 8, 16, 16)).astype(np.float32)
    )
    result, report = models.build(
        tmp_path,
        model([conv], {"x": ["N", 8, 16, 16]}, ["y"], [weights("w", (8, 8, 3, 3))]),
        "max_batch: 8\nprecision: {mode: int8, calibration: {data: calib}}\n",
    )
    assert result.exit_code == 0, result.stderr
    phases = report["build"]["phases"]["main"]
    total, tensorrt = sum(phases.values()), phases["tensorrt"]
    printed = re.search(r"built \S+ \([\d.]+ MB\) in ([\d.]+) s \(TensorRT ([\d.]+) s", result.stderr)
    assert printed, result.stderr
    assert float(printed.group(1)) == pytest.approx(total, abs=0.011) and float(printed.group(2)) == pytest.approx(
        tensorrt, abs=0.006
    )
    assert float(printed.group(1)) > float(printed.group(2)) + phases["precision"] - 0.02
    calibration = report["calibration"]["seconds"]  # calibration's time on its own, inside precision's
    assert 0 < calibration <= phases["precision"]
    assert report["build"]["phases"]["parts"] == {"precision": {"calibration": calibration}}
    markdown = (tmp_path / "build" / "spec.report.md").read_text()
    assert re.search(r"in [\d.]+ s \(TensorRT [\d.]+ s[^)]*\) before writing its outputs", markdown), markdown[:400]


def test_a_report_without_phases_names_the_time_as_tensorrts():
    assert build_time({"build_seconds": 1.5}) == "1.50 s of TensorRT build"
    phases = {"main": {"tensorrt": 1.0, "precision": 3.0, "load": 0.2}}
    assert build_time({"build_seconds": 1.5, "phases": phases}) == "4.20 s (TensorRT 1.00 s, precision 3.00 s)"
    parts = {"precision": {"calibration": 2.5}}
    assert (
        build_time({"build_seconds": 1.5, "phases": {**phases, "parts": parts}})
        == "4.20 s (TensorRT 1.00 s, precision 3.00 s, calibration 2.50 s of it)"
    )


def test_the_process_start_is_counted_once_per_process(tmp_path):
    """A build run as its own process names its CLI and spec time; of two specs built in one
    process, only the first had the process's imports to do (each reported them before)."""
    import json
    import subprocess
    import sys

    from onnx import helper

    relu = helper.make_node("Relu", ["x"], ["y"], name="relu")
    models.save(model([relu], {"x": ["N", 4]}, ["y"], []), tmp_path / "model.onnx")
    specs = []
    for name in ("first", "second"):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text("model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
        specs.append(str(spec))
    done = subprocess.run([sys.executable, "-m", "trtc", "build", *specs, "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    phases = [
        json.loads((tmp_path / "build" / f"{n}.report.json").read_text())["build"]["phases"]["main"]
        for n in ("first", "second")
    ]
    assert phases[0]["cli and spec"] > 0 and phases[0]["imports"] > 0
    assert "cli and spec" not in phases[1] and phases[1]["imports"] < 0.05  # TensorRT's, imported already

"""`trtc diff` reads files anyone can edit or point it at: a value that is not a number fails
every threshold instead of passing it, and anything that is not a trtc report is one line and
exit 2, never an internal error, a hang or a read of an endless file."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from tests import models
from trtc.cli import main
from trtc.report.diff import MAX_REPORT_BYTES, Threshold

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def fp16(tmp_path_factory):
    """A real FP16 build's report (it has estimated times and measured accuracy)."""
    folder = tmp_path_factory.mktemp("fp16")
    models.save(models.conv_bn_relu(), folder / "model.onnx")
    spec = models.write_spec(
        folder, "model: model.onnx\nmax_batch: 2\nprecision: fp16\ntarget: {compute_capabilities: [8.9]}\n"
    )
    result = CliRunner().invoke(main, ["build", str(spec)])
    assert result.exit_code == 0, result.stderr
    return folder / "build" / "spec.report.json"


def _edited(fp16, tmp_path, name, change):
    report = json.loads(fp16.read_text())
    change(report)
    path = tmp_path / name
    path.write_text(json.dumps(report))  # NaN and Infinity as Python's json writes them
    return path


def _diff(old, new, *args):
    return CliRunner().invoke(main, ["diff", str(old), str(new), *args])


def _nan_cosine_after_a_finite_one(report):
    report["accuracy"]["outputs"].append({**report["accuracy"]["outputs"][0], "name": "second", "cosine": NAN})


@pytest.mark.parametrize(
    "change, thresholds",
    [
        (lambda r: r["cost"].update(estimated_total_us=NAN), ["time=+5%", "time=-5%", "time=+1000", "time=-0"]),
        (lambda r: r["cost"].update(estimated_total_us=INF), ["time=+5%", "time=-5%"]),
        (lambda r: r["cost"]["after_fusion"].update(flops=-INF), ["flops=+0", "flops=-10%"]),
        (_nan_cosine_after_a_finite_one, ["accuracy=-0.001", "accuracy=+1"]),  # min() of [0.99..., nan] is not nan
        (lambda r: r["build"].update(build_seconds=NAN), ["build_time=+100%"]),
    ],
)
def test_a_value_that_is_not_a_finite_number_crosses_every_threshold(fp16, tmp_path, change, thresholds):
    broken = _edited(fp16, tmp_path, "broken.json", change)
    for old, new in ((fp16, broken), (broken, fp16)):
        for threshold in thresholds:
            result = _diff(old, new, "--fail-on", threshold)
            assert result.exit_code == 4, (threshold, result.stderr)
            assert f"crosses {threshold}" in result.stderr


@pytest.mark.parametrize(
    "threshold",
    [
        Threshold("time", 5, True, "time=+5%", False),
        Threshold("time", 5, True, "time=-5%", True),
        Threshold("time", 0, False, "time=+0", False),
        Threshold("time", 0, False, "time=-0", True),
    ],
)
def test_threshold_crossing_of_non_finite_values(threshold):
    for old, new in ((NAN, 1.0), (1.0, NAN), (INF, INF), (1.0, -INF), (NAN, NAN)):
        assert threshold.crossed(old, new), (old, new)
    assert not threshold.crossed(10**400, 10**400)  # a huge integer is still a number


@pytest.mark.parametrize(
    "change, problem",
    [
        (
            lambda r: r["build"].update(plan_bytes="279556"),
            "build.plan_bytes: expected an integer or nothing; got '279556'",
        ),
        (lambda r: r["build"].update(plan_bytes=-1), "build.plan_bytes: expected a number >= 0; got -1"),
        (lambda r: r["fusion"].update(kernels={"0": {}}), "fusion.kernels: expected a list or nothing; got a mapping"),
        (lambda r: r["fusion"]["kernels"][1].pop("onnx_nodes"), "fusion.kernels[1]: missing required key 'onnx_nodes'"),
        (
            lambda r: r["fusion"]["kernels"][1]["onnx_nodes"].append(7),
            "fusion.kernels[1].onnx_nodes[4]: expected a string; got 7",
        ),
        (
            lambda r: r["fusion"]["counts"].update(kernels="5"),
            "fusion.counts.kernels: expected an integer or nothing; got '5'",
        ),
        (
            lambda r: r["accuracy"]["outputs"][0].update(cosine="high"),
            "accuracy.outputs[0].cosine: expected a number or nothing; got 'high'",
        ),
        (
            lambda r: r["cost"].update(after_fusion=[1, 2]),
            "cost.after_fusion: expected a mapping or nothing; got a list",
        ),
        (lambda r: r.update(warnings="none"), "warnings: expected a list or nothing; got 'none'"),
        (lambda r: r["build"].update(plan_bytes=True), "build.plan_bytes: expected an integer or nothing; got true"),
        (
            lambda r: r["cost"].update(estimated_total_us=10**301),
            "cost.estimated_total_us: expected a number <= 1e+300; got " + str(10**301),
        ),
    ],
)
def test_a_report_with_wrong_types_is_one_line(fp16, tmp_path, change, problem):
    broken = _edited(fp16, tmp_path, "broken.json", change)
    result = _diff(fp16, broken, "--fail-on", "time=+5%")
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {broken}: not a trtc build report: {problem}; pass the .report.json a trtc build wrote\n",
    )


def test_files_that_cannot_be_reports_are_refused_before_reading(fp16, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"schema": "trtc.report/1", "build": {}, "warnings": ' + "[" * 100_000 + "]" * 100_000 + "}")
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_REPORT_BYTES + 1)  # sparse: no disk used
    os.mkfifo(tmp_path / "fifo.json")
    for path, problem in (
        (deep, "not a JSON file (nested too deeply)"),
        (huge, f"{MAX_REPORT_BYTES + 1:,} bytes, more than any trtc report ({MAX_REPORT_BYTES >> 20} MiB)"),
        ("/dev/zero", "not a regular file"),
        (tmp_path / "fifo.json", "not a regular file"),
        (tmp_path, "not a regular file"),
    ):
        result = _diff(path, fp16)
        assert result.exit_code == 2, (path, result.stderr)
        assert result.stderr == f"error: {path}: {problem}; pass the .report.json a trtc build wrote\n"


def test_diff_json_is_strict_json_when_a_value_is_not_finite(fp16, tmp_path):
    """Most JSON parsers refuse a bare NaN: the machine output writes null instead."""
    broken = _edited(fp16, tmp_path, "broken.json", lambda r: r["cost"].update(estimated_total_us=NAN))
    result = _diff(fp16, broken, "--json")
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout
    json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"bare {name} in --json output"))

"""No output ever overwrites an input: every path trtc writes is compared with every file and
folder it reads, by real identity (resolved path, hard link, symlink), before anything is
written. A clash is exit 2 naming both, the inputs keep their bytes, and nothing is written."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests import models
from tests.cli_runner import run

GENERATOR = """import numpy as np


def samples():
    for seed in range(12):
        yield {"x": np.random.default_rng(seed).standard_normal((1, 3, 16, 16)).astype(np.float32)}
"""


def _project(folder: Path) -> None:
    """A model with external data, a folder of calibration samples and a generator module."""
    onnx.save(
        models.conv_bn_relu(),
        folder / "model.onnx",
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    (folder / "calib").mkdir()
    for index in range(12):
        np.save(
            folder / "calib" / f"s{index}.npy",
            np.random.default_rng(index).standard_normal((1, 3, 16, 16)).astype(np.float32),
        )
    (folder / "gen.py").write_text(GENERATOR)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


SPEC = "model: model.onnx\nmax_batch: 2\ntarget: {{compute_capabilities: [8.9]}}\n{extra}"
INT8 = "precision: {{mode: int8, calibration: {{data: {data}, cache: {cache}}}}}\n"

CASES = {
    "plan is the external data": ("output: {plan: weights.bin}\n", "weights.bin", "the model's external data file"),
    "plan is a hard link to the model": ("output: {plan: linked.plan}\n", "model.onnx", "is a hard link to the model"),
    "plan is a symlink to the external data": (
        "output: {plan: symlink.plan}\n",
        "weights.bin",
        "the model's external data file",
    ),
    "report is the spec": ("output: {report: spec.yaml}\n", "spec.yaml", "the spec"),
    "report inside the calibration folder": (
        INT8.format(data="calib", cache="c.json") + "output: {report: calib/r.report.json}\n",
        "calib",
        "lies inside the folder of precision.calibration.data",
    ),
    "calibration cache is the model": (INT8.format(data="calib", cache="model.onnx"), "model.onnx", "the model"),
    "calibration cache is a sample": (
        INT8.format(data="calib", cache="calib/s3.npy"),
        "calib/s3.npy",
        "precision.calibration.data",
    ),
    "onnx output is the generator": (
        INT8.format(data="'python:gen:samples'", cache="c.json") + "output: {onnx: gen.py}\n",
        "gen.py",
        "a module of its generator",
    ),
    "timing cache is the external data": (
        "target: {compute_capabilities: [8.9], timing_cache: weights.bin}\n",
        "weights.bin",
        "the model's external data file",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_an_output_on_an_input_is_refused_before_anything_is_written(tmp_path, case):
    extra, victim, named = CASES[case]
    _project(tmp_path)
    os.link(tmp_path / "model.onnx", tmp_path / "linked.plan")
    (tmp_path / "symlink.plan").symlink_to(tmp_path / "weights.bin")
    text = SPEC.format(extra=extra)
    if "target:" in extra:
        text = text.replace("target: {compute_capabilities: [8.9]}\n", "")
    spec = models.write_spec(tmp_path, text)
    before = _digests(tmp_path)
    result = run("build", spec)
    assert result.exit_code == 2, result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "writing there would change an input" in error[0] and named in error[0], error
    assert str(tmp_path / victim.split("/")[0]) in error[0] or victim in error[0]
    assert _digests(tmp_path) == before


def test_a_depfile_on_the_model_is_refused(tmp_path):
    _project(tmp_path)
    spec = models.write_spec(tmp_path, SPEC.format(extra=""))
    before = _digests(tmp_path)
    result = run("build", spec, "--depfile", tmp_path / "weights.bin")
    assert result.exit_code == 2 and "--depfile" in result.stderr and "external data" in result.stderr
    assert _digests(tmp_path) == before


def test_init_does_not_write_its_spec_over_the_model_even_with_force(tmp_path):
    _project(tmp_path)
    before = _digests(tmp_path)
    for target in ("model.onnx", "weights.bin"):
        result = run("init", tmp_path / "model.onnx", "-o", tmp_path / target, "--force")
        assert result.exit_code == 2, result.output
        assert "writing there would change an input" in result.stderr
    assert _digests(tmp_path) == before


def test_one_specs_output_on_another_specs_input_is_refused(tmp_path):
    _project(tmp_path)
    (tmp_path / "b").mkdir()
    models.save(models.conv_bn_relu(), tmp_path / "b" / "model.onnx")
    first = models.write_spec(tmp_path, SPEC.format(extra="output: {plan: b/model.onnx}\n"), "a.yaml")
    second = models.write_spec(tmp_path / "b", SPEC.format(extra=""), "b.yaml")
    before = _digests(tmp_path)
    result = run("build", first, second)
    assert result.exit_code == 2, result.output
    assert "b.yaml's the model" in result.stderr
    assert _digests(tmp_path) == before


def test_check_reports_the_clash_too(tmp_path):
    _project(tmp_path)
    spec = models.write_spec(tmp_path, SPEC.format(extra="output: {plan: weights.bin}\n"))
    result = run("check", spec)
    assert result.exit_code == 2 and "external data" in result.stderr

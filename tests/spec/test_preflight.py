"""Every spec error the model does not decide is reported before the model is read: by `trtc
build` and by `trtc check`, in one line, exit 2. Each case runs against a model file that is not
ONNX at all, so a command that read the model first would report that instead.

The cases are the spec errors of the whole suite (exit 2 for a problem in the spec or in a file
it names), taken from the tables of the tests that own them where they are tables, plus those
that only preflight finds early. What only the model can tell (an input or output it does not
have, a dimension it fixes, a batch dimension it leaves ambiguous, data that does not fit its
inputs) is left out by name."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.cli.test_build_cli import BAD_INPUTS
from tests.cli.test_init_check import CHECK_SPEC_PROBLEMS
from tests.cli_runner import run
from tests.spec.test_spec_errors import CASES as LOAD_CASES

pytestmark = pytest.mark.build  # `trtc check` imports TensorRT-RTX

NOT_A_MODEL = b"not an ONNX model: a command that reads it before the spec's errors reports this instead\n"

# Spec errors that only the model can show, named so that a new case is decided, not skipped.
NEEDS_THE_MODEL = {
    "unknown output tensor",
    "dynamic dim without range",
    "unknown input",
    "fixed dim contradicted",
    "fixed dim contradicted by a fixed shape",
    "model is not onnx",
    "outputs: [yy]\n",
    "inputs: {images: {shape: [1, 3, 16, 16]}}\n",
    "inputs: {x: {min: [1, 3, 8, 8], max: [4, 3, 8, 8]}}\n",
}


def _nothing(folder):
    pass


def _calib_folder(*names):
    def make(folder):
        (folder / "calib").mkdir()
        for name in names:
            np.save(folder / "calib" / name, np.zeros((1, 3, 16, 16), np.float32))

    return make


def _fifo_sample(folder):
    _calib_folder("s0.npy")(folder)
    os.mkfifo(folder / "calib" / "s1.npy")


def _mixed_samples(folder):
    _calib_folder("s0.npy")(folder)
    np.savez(folder / "calib" / "s1.npz", x=np.zeros((1, 3, 16, 16), np.float32))


INT8 = "precision: {{mode: int8, calibration: {{data: {data}}}}}\n"

# name -> (spec lines after `model: model.onnx`, files to make, the error's text). Where a case
# comes from another test, the comment names it.
PREFLIGHT_CASES = {
    # tests/precision/test_accuracy_samples.py: a gate on too few samples
    "gate on accuracy.samples below 8": (
        "precision: fp16\naccuracy: {samples: 4, min_cosine: 0.9}\n",
        _nothing,
        "error: accuracy.min_cosine: a gate needs at least 8 samples to measure; "
        "accuracy.samples is 4: raise accuracy.samples to 8 or more",
    ),
    # tests/backend/test_build_real.py: a compute capability the backend cannot target
    "compute capability the backend lacks": (
        "target: {compute_capabilities: [9.0]}\n",
        _nothing,
        "cannot target 9.0; it supports 7.5, 8.0, 8.6, 8.9, 12.0",
    ),
    # tests/cli/test_hostile_data.py: a sample that is no regular file
    "calibration sample is a FIFO": (INT8.format(data="calib"), _fifo_sample, "s1.npy is not a regular file"),
    # tests/cli/test_sacred_inputs.py: an output inside a data folder
    "report inside the calibration folder": (
        INT8.format(data="calib") + "output: {report: calib/r.report.json}\n",
        _calib_folder("s0.npy"),
        "lies inside the folder of precision.calibration.data",
    ),
    "calibration folder empty": (
        INT8.format(data="calib"),
        _calib_folder(),
        "error: precision.calibration.data: {dir}/calib holds no .npy, .npz or image files",
    ),
    "calibration folder mixes kinds": (
        INT8.format(data="calib"),
        _mixed_samples,
        "error: precision.calibration.data: {dir}/calib mixes .npy, .npz files",
    ),
    "generator without a function": (
        INT8.format(data="'python:gen'"),
        _nothing,
        "error: precision.calibration.data: expected python:module:function, got 'python:gen'",
    ),
    "accuracy data folder missing": (
        "precision: fp16\naccuracy: {data: val}\n",
        _nothing,
        "error: accuracy.data: folder not found: {dir}/val (paths are relative to the spec's folder)",
    ),
}


def _cases():
    for name, (text, expected) in LOAD_CASES.items():
        yield f"load: {name}", "spec.yaml", text, _nothing, expected
    for name, (text, spec_name, code, expected) in BAD_INPUTS.items():
        if code == 2 and name not in NEEDS_THE_MODEL:
            yield f"build: {name}", spec_name, text, _nothing, expected
    for extra, expected in CHECK_SPEC_PROBLEMS:
        if extra not in NEEDS_THE_MODEL:
            yield f"check: {expected}", "spec.yaml", "model: model.onnx\nmax_batch: 4\n" + extra, _nothing, expected
    for name, (extra, make, expected) in PREFLIGHT_CASES.items():
        yield name, "spec.yaml", "model: model.onnx\nmax_batch: 4\n" + extra, make, expected


CASES = {name: case for name, *case in _cases()}


@pytest.mark.parametrize("name", CASES)
def test_a_spec_error_is_reported_before_the_model_is_read(tmp_path, name):
    spec_name, text, make, expected = CASES[name]
    (tmp_path / "model.onnx").write_bytes(NOT_A_MODEL)
    make(tmp_path)
    if text is not None:
        (tmp_path / spec_name).write_text(text)
    expected = expected.replace("{dir}", str(tmp_path))
    for command in ("check", "build"):
        result = run(command, tmp_path / spec_name)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert (result.exit_code, len(errors)) == (2, 1) and expected in errors[0], (command, result.stderr)
        assert not (tmp_path / "build").exists()


def test_the_cases_are_many_and_every_model_dependent_one_is_named():
    assert len(CASES) >= 30
    named = set(BAD_INPUTS) | {extra for extra, _ in CHECK_SPEC_PROBLEMS}
    assert NEEDS_THE_MODEL <= named  # a renamed case is decided again

"""Hostile or broken data and specs get one line and an exit code, never a traceback, a hang or
gigabytes of memory: sizes are checked before allocating, special files are refused by name,
every number in the spec is range-checked, an unreadable old report means a rebuild."""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from tests import models
from tests.cli_runner import run

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

SPEC = "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n"
INT8 = SPEC + "precision: {mode: int8, calibration: {data: calib}}\n"


def _calib(folder: Path, count: int = 12) -> Path:
    (folder / "calib").mkdir(exist_ok=True)
    for index in range(count):
        np.save(folder / "calib" / f"s{index:02d}.npy", np.random.default_rng(index).random((1, 3, 16, 16), np.float32))
    return folder / "calib"


def _one_error_line(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A small PNG whose header says width x height (a decompression bomb as Pillow sees it)."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path.write_bytes(bytes(data))


def _npy_header_only(path: Path, shape: tuple[int, ...]) -> None:
    with open(path, "wb") as stream:
        np.lib.format.write_array_header_1_0(stream, {"descr": "<f4", "fortran_order": False, "shape": shape})


@pytest.mark.parametrize(
    "case",
    [
        "image bomb",
        "npy header lies",
        "npy too large",
        "npz member too large",
        "npz member truncated",
        "npy link to /dev/zero",
        "npy is a FIFO",
    ],
)
def test_hostile_calibration_files_are_one_line(model_dir, case):
    calib = _calib(model_dir)
    victim = calib / "s00.npy"
    victim.unlink()
    if case == "image bomb":
        victim = calib / "bomb.png"
        _png_claiming(victim, 20000, 20000)
        spec_text = INT8.replace("data: calib}", "data: calib, preprocess: {scale: 255}}")
    else:
        spec_text = INT8
        if case == "npy header lies":
            _npy_header_only(victim, (10**12,))
        elif case == "npy too large":
            _npy_header_only(victim, (1, 3, 2**15, 2**15))
        elif case.startswith("npz"):
            victim = calib / "s00.npz"
            inner = model_dir / "x.npy"
            _npy_header_only(inner, (2**30,) if case == "npz member too large" else (1, 3, 16, 16))
            with zipfile.ZipFile(victim, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.write(inner, "x.npy")
            for other in calib.glob("*.npy"):  # one kind per folder
                np.savez(other.with_suffix(".npz"), x=np.load(other))
                other.unlink()
        elif case == "npy link to /dev/zero":
            victim.symlink_to("/dev/zero")
        else:
            os.mkfifo(victim)
    if case == "image bomb":  # images only: a folder of one kind
        for other in calib.glob("*.npy"):
            other.unlink()
        for index in range(11):
            Image.new("RGB", (16, 16), (index, 0, 0)).save(calib / f"i{index}.png")
    spec = models.write_spec(model_dir, spec_text)
    for command in ("check", "build"):  # build also fingerprints the data: reading /dev/zero never ended
        done = subprocess.run(
            [sys.executable, "-m", "trtc", command, str(spec)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and victim.name in done.stderr
    assert not (model_dir / "build").exists()


def test_a_fifo_as_the_spec_or_the_model_is_refused_without_hanging(model_dir):
    os.mkfifo(model_dir / "fifo.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "trtc", "build", str(model_dir / "fifo.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "is not a regular file" in done.stderr
    os.mkfifo(model_dir / "fifo.onnx")
    spec = models.write_spec(model_dir, SPEC.replace("model.onnx", "fifo.onnx"))
    done = subprocess.run(
        [sys.executable, "-m", "trtc", "build", str(spec)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "is not a regular file" in done.stderr


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_external_data_behind_a_link_is_one_line(tmp_path, link):
    onnx.save(
        models.conv_bn_relu(),
        tmp_path / "model.onnx",
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    os.rename(tmp_path / "weights.bin", tmp_path / "real.bin")
    (os.symlink if link == "symlink" else os.link)(tmp_path / "real.bin", tmp_path / "weights.bin")
    result = run("build", models.write_spec(tmp_path, SPEC))
    _one_error_line(result, 2, "onnx refuses the external data", "cp --dereference")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ("workspace: 18446744073709551616\n", "workspace: expected a number <="),
        ("workspace: 9000000TiB\n", "more than TensorRT can take"),
        (
            "precision: {mode: int8, calibration: {data: calib, preprocess: {scale: 2024-01-01}}}\n",
            "YAML read a date here",
        ),
        (
            "precision: {mode: int8, calibration: {data: calib, preprocess: {mean: !!binary aGVsbG8=}}}\n",
            "YAML read binary data here",
        ),
        (
            "precision: {mode: int8, calibration: {data: calib, samples: 100000000000}}\n",
            "samples: expected a number <=",
        ),
        ("inputs: {x: {shape: [1, 3, 16, 99999999999]}}\n", "expected a number <="),
    ],
)
def test_every_number_and_value_in_the_spec_is_checked(model_dir, extra, fragment):
    _calib(model_dir)
    result = run("build", models.write_spec(model_dir, SPEC.replace("max_batch: 2\n", "") + extra))
    _one_error_line(result, 2, fragment)


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r["build"]["fingerprint"].update(model_files=None),
        lambda r: r["build"]["fingerprint"].update(components="x"),
        lambda r: r["build"].update(fingerprint=[1, 2]),
        lambda r: r.update(build="x"),
    ],
)
def test_an_unreadable_last_report_means_a_rebuild(model_dir, damage):
    spec = models.write_spec(model_dir, SPEC)
    assert run("build", spec).exit_code == 0
    path = model_dir / "build" / "spec.report.json"
    report = json.loads(path.read_text())
    damage(report)
    path.write_text(json.dumps(report))
    result = run("build", spec, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["builds"][0]["status"] == "built"


def test_a_file_size_limit_while_writing_is_one_line_and_leaves_no_output(model_dir):
    spec = models.write_spec(model_dir, SPEC)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))  # the plan is larger

    done = subprocess.run(
        [sys.executable, "-m", "trtc", "build", str(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "cannot write" in done.stderr and "spec.plan" in done.stderr
    assert not (model_dir / "build").exists()


def test_file_names_that_are_not_utf8_build_and_stay_up_to_date(tmp_path):
    """Linux file names are bytes: a calibration sample and a project folder named in no encoding
    are fingerprinted, locked and listed in the depfile by those bytes (encoding them as UTF-8
    stopped the build with an internal error)."""
    project = tmp_path / os.fsdecode(b"proj\xff\xfe")
    project.mkdir()
    models.save(models.conv_bn_relu(), project / "model.onnx")
    calib = _calib(project)
    (calib / "s00.npy").rename(calib / os.fsdecode(b"s\xe9\xff.npy"))
    spec = models.write_spec(project, INT8)
    depfile = project / "build" / "spec.d"
    command = [sys.executable, "-m", "trtc", "build", str(spec), "--depfile", str(depfile)]
    first = subprocess.run(command, capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr.decode(errors="replace")
    assert b"s\xe9\xff.npy" in depfile.read_bytes()
    again = subprocess.run(command, capture_output=True, timeout=300)
    assert again.returncode == 0 and b"up to date" in again.stderr, again.stderr.decode(errors="replace")

"""The up-to-date check trusts recorded file stamps instead of re-reading a model or plan, and
re-reads contents when a stamp changes."""

from __future__ import annotations

import json
import os

import onnx
import pytest
from onnx import numpy_helper

from tests import models
from tests.cli.test_incremental import SPEC
from tests.cli_runner import run
from trtc.incremental import fingerprint, up_to_date

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


@pytest.fixture
def hashed(monkeypatch):
    """The files whose contents the up-to-date check reads."""
    read = []
    original = fingerprint.hash_files

    def counting(paths):
        read.extend(p.name for p in paths)
        return original(paths)

    monkeypatch.setattr(fingerprint, "hash_files", counting)
    monkeypatch.setattr(up_to_date, "hash_files", counting)
    return read


def _reason(spec):
    result = run("build", spec, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["builds"][0]["reason"]


def test_a_no_op_build_reads_neither_model_nor_plan(model_dir, hashed):
    spec = models.write_spec(model_dir, SPEC)
    assert run("build", spec).exit_code == 0
    hashed.clear()
    assert _reason(spec) == "up to date"
    assert hashed == []


def test_a_touched_model_is_read_again_and_still_up_to_date(model_dir, hashed):
    spec = models.write_spec(model_dir, SPEC)
    assert run("build", spec).exit_code == 0
    model, plan = model_dir / "model.onnx", model_dir / "build" / "spec.plan"
    for path in (model, plan):
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    hashed.clear()
    assert _reason(spec) == "up to date"
    assert sorted(hashed) == ["model.onnx", "spec.plan"]


def test_a_same_size_edit_of_the_model_is_found(model_dir):
    spec = models.write_spec(model_dir, SPEC)
    assert run("build", spec).exit_code == 0
    path = model_dir / "model.onnx"
    size = path.stat().st_size
    model = onnx.load(path)
    weight = model.graph.initializer[0]
    weight.raw_data = numpy_helper.from_array(-numpy_helper.to_array(weight), weight.name).raw_data  # new contents
    onnx.save(model, path)
    assert path.stat().st_size == size
    assert _reason(spec) == "the model changed"


@pytest.mark.parametrize("stamps", ["not a mapping", {"model.onnx": "x"}, None])
def test_unusable_recorded_stamps_mean_reading_the_contents(model_dir, hashed, stamps):
    spec = models.write_spec(model_dir, SPEC)
    assert run("build", spec).exit_code == 0
    report = model_dir / "build" / "spec.report.json"
    document = json.loads(report.read_text())
    document["build"]["file_stamps"] = stamps
    report.write_text(json.dumps(document))
    hashed.clear()
    assert _reason(spec) == "up to date"
    assert sorted(hashed) == ["model.onnx", "spec.plan"]


def test_reports_name_files_relative_to_the_spec_folder(model_dir):
    spec = models.write_spec(model_dir, SPEC)
    assert run("build", spec).exit_code == 0
    build = json.loads((model_dir / "build" / "spec.report.json").read_text())["build"]
    assert (build["spec"], build["model"], build["plan"]) == ("spec.yaml", "model.onnx", "build/spec.plan")
    assert build["fingerprint"]["model_files"] == ["model.onnx"]
    assert sorted(build["file_stamps"]) == ["build/spec.plan", "model.onnx"]
    assert str(model_dir) not in json.dumps(build)

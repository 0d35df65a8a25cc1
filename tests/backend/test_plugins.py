"""Plugin libraries from the spec, and nodes that need a plugin: loading, refusal, fingerprint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.cli_runner import run

# TensorRT's entry points with no creator behind them: the loader finds the library and refuses it.
NO_CREATORS = """
static void *none[1];
void setLoggerFinder(void *finder) { (void)finder; }
void *const *getCreators(int *count) { *count = 0; return none; }
"""


def _roi_align(tmp_path: Path, **attributes) -> Path:
    """A node TensorRT-RTX imports only through its registered ROIAlign_TRT plugin (version 2)."""
    node = helper.make_node("ROIAlign_TRT", ["x", "rois"], ["y"], name="roi_align", **attributes)
    graph = helper.make_graph(
        [node],
        "plugin_node",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16]),
            helper.make_tensor_value_info("rois", TensorProto.FLOAT, [2, 5]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "model.onnx")
    return tmp_path / "model.onnx"


def _spec(tmp_path: Path, plugins: str = "") -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"model: model.onnx\n{plugins}target: {{backend: tensorrt-rtx, compute_capabilities: [8.9]}}\n"
        "output: {plan: out/m.plan, report: out/m.report.json}\n"
    )
    return spec


def test_a_node_without_importer_or_plugin_says_how_to_load_one(tmp_path):
    node = helper.make_node("FancyNms", ["x"], ["y"], name="nms", domain="example")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example", 1)]),
        tmp_path / "model.onnx",
    )
    result = run("build", _spec(tmp_path))
    assert result.exit_code == 1
    assert (
        "node 'nms' (FancyNms): TensorRT has no importer for FancyNms and no registered plugin has that name"
        in result.output
    )
    assert "plugins: [path/to/lib.so]" in result.output
    assert not (tmp_path / "out").exists()


def test_a_node_asking_for_a_registered_plugin_in_another_version_is_told_which_exist(tmp_path):
    _roi_align(tmp_path)
    result = run("build", _spec(tmp_path))
    assert result.exit_code == 1
    assert "a plugin named ROIAlign_TRT is registered (version 2)" in result.output


def test_a_missing_plugin_library_is_a_spec_error(tmp_path):
    _roi_align(tmp_path)
    result = run("build", _spec(tmp_path, "plugins: [lib/nothing.so]\n"))
    assert result.exit_code == 2
    assert "plugins[0]: plugin library not found" in result.output and "nothing.so" in result.output


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to make a library")
def test_a_library_that_is_no_plugin_library_is_refused_with_tensorrts_reason(tmp_path):
    (tmp_path / "none.c").write_text(NO_CREATORS)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "libnone.so"), str(tmp_path / "none.c")], check=True
    )
    _roi_align(tmp_path, plugin_version="2")
    result = run("build", _spec(tmp_path, "plugins: [libnone.so]\n"))
    assert result.exit_code == 2, result.output
    assert "plugins[0]: tensorrt-rtx could not load" in result.output and "No creator returned" in result.output
    assert not (tmp_path / "out").exists()


def test_plugin_files_are_in_the_fingerprint_and_the_depfile(tmp_path):
    from trtc.incremental.fingerprint import fingerprint
    from trtc.spec.load import load_spec

    (tmp_path / "libp.so").write_bytes(b"one")
    _roi_align(tmp_path)
    spec = load_spec(_spec(tmp_path, "plugins: [libp.so]\n"))
    first = fingerprint(spec, [spec.model])
    (tmp_path / "libp.so").write_bytes(b"two")
    second = fingerprint(spec, [spec.model])
    assert first.digest != second.digest
    assert tmp_path / "libp.so" in first.inputs

"""Reduced-precision builds end to end with TensorRT-RTX: the kernels TensorRT chose, the accuracy
table, and the gate that stops a build (exit 3, only the report written)."""

import json

import numpy as np
import pytest

from tests import models
from tests.cli_runner import run, snapshot

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


def report_of(spec):
    return json.loads((spec.parent / "build" / f"{spec.stem}.report.json").read_text())


def test_fp16_demo_runs_in_half_precision(demo_copy):
    result = run("build", demo_copy, "--set", "precision=fp16")
    assert result.exit_code == 0, result.stderr
    report = report_of(demo_copy)
    convolutions = [k for k in report["fusion"]["kernels"] if k["type"] == "correlation"]
    assert convolutions and all(k["precision"] == "Half" for k in convolutions)
    assert report["precision"]["converted_nodes"] == 15 and report["precision"]["kept_fp32"] == {}
    accuracy = report["accuracy"]
    assert accuracy["samples"] == 64 and accuracy["source"].startswith("random inputs at the opt shape")
    assert all(o["cosine"] > 0.9999 for o in accuracy["outputs"])
    assert next(o for o in accuracy["outputs"] if o["name"] == "softmax.out")["top1_agreement"] > 0.9
    assert "fp16: 15 nodes converted" in result.stderr


def test_bf16_build_and_emulated_accuracy(demo_copy):
    result = run("build", demo_copy, "--set", "precision=bf16")
    assert result.exit_code == 0, result.stderr
    report = report_of(demo_copy)
    assert {k["precision"] for k in report["fusion"]["kernels"] if k["type"] == "correlation"} == {"BFloat16"}
    assert report["accuracy"]["emulated"] is True


def test_keep_fp32_keeps_kernels_in_float(demo_copy):
    result = run("build", demo_copy, "--set", "precision={mode: fp16, keep_fp32: ['head*']}")
    assert result.exit_code == 0, result.stderr
    kernels = report_of(demo_copy)["fusion"]["kernels"]
    head = next(k for k in kernels if k["type"] == "correlation" and "head0" in k["onnx_nodes"])
    stem = next(k for k in kernels if k["type"] == "correlation" and "stem.conv" in k["onnx_nodes"])
    assert (head["precision"], stem["precision"]) == ("Float", "Half")


def test_failed_accuracy_gate_exits_3_and_writes_only_the_report(demo_copy):
    before = snapshot(demo_copy.parent)
    result = run("build", demo_copy, "--set", "precision=bf16", "--set", "accuracy.min_cosine=0.9999999")
    assert result.exit_code == 3
    assert "error: accuracy gate failed for bf16: output '" in result.stderr
    assert "< accuracy.min_cosine 0.9999999" in result.stderr
    assert snapshot(demo_copy.parent) == sorted([*before, "build", "build/demo.report.json"])  # the figures, no plan


def test_accuracy_on_user_data(tmp_path):
    models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    (tmp_path / "data").mkdir()
    for index in range(5):
        np.save(
            tmp_path / "data" / f"sample{index}.npy",
            np.random.default_rng(index).standard_normal((2, 3, 16, 16)).astype(np.float32),
        )
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\nprecision: fp16\naccuracy: {data: data, samples: 9, min_cosine: 0.999}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    accuracy = report_of(spec)["accuracy"]
    assert accuracy["samples"] == 9 and accuracy["source"].startswith("accuracy.data: 5 npy file(s)")
    assert accuracy["passed"] is True


def test_fp16_keeps_layers_fp32_where_user_data_overflows_fp16(tmp_path):
    # Random inputs keep every activation small; the user's data (|x| ~ 1e5) overflows FP16. The
    # range rules read the accuracy data, so the layers reading it stay FP32 and the gate holds
    # (it failed with Inf when the ranges came from one random batch).
    models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    (tmp_path / "data").mkdir()
    np.save(
        tmp_path / "data" / "big.npy",
        (np.random.default_rng(0).standard_normal((8, 3, 16, 16)) * 1e5).astype(np.float32),
    )
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\nprecision: fp16\naccuracy: {data: data, samples: 8, max_rel_l2: 0.5}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    report = report_of(spec)
    assert set(report["precision"]["kept_fp32"]) == {"conv0+bn0", "relu0", "conv1"}  # each reaches |x| > 1e5
    assert report["precision"]["activation_ranges"]["samples"] == 8
    assert report["accuracy"]["passed"] is True and not report["accuracy"]["outputs"][0]["nonfinite"]


def test_top1_gate_on_a_model_without_a_score_matrix_is_a_spec_error(model_dir):
    # conv_bn_relu's output is a feature map, not [batch, classes]: the gate cannot be measured.
    spec = models.write_spec(
        model_dir,
        "model: model.onnx\nmax_batch: 2\nprecision: fp16\naccuracy: {min_top1_agreement: 0.9}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    before = snapshot(model_dir)
    result = run("build", spec)
    assert result.exit_code == 2
    assert "\nerror: accuracy.min_top1_agreement: no output (y) is a [batch, classes] score matrix" in result.stderr
    assert snapshot(model_dir) == before


def test_keep_fp32_follows_nodes_that_passes_merged_and_flags_patterns_matching_nothing(demo_copy):
    # merge-siblings turns head0, head1, head2 into one convolution: keeping head2 keeps that one.
    result = run("build", demo_copy, "--set", "precision={mode: fp16, keep_fp32: [head2, Sofmax]}")
    assert result.exit_code == 0, result.stderr
    report = report_of(demo_copy)
    assert "head0+head1+head2" in report["precision"]["kept_fp32"]
    heads = next(k for k in report["fusion"]["kernels"] if k["type"] == "correlation" and "head2" in k["onnx_nodes"])
    assert heads["precision"] == "Float"
    assert (
        "warning: precision.keep_fp32: 'Sofmax' matches no node name or op type of the model; check the spelling"
        in result.stderr
    )
    assert not any("'head2' matches no node" in w for w in report["warnings"])

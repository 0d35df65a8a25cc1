"""INT8/FP8 post-training quantization with real calibration runs and TensorRT-RTX builds."""

import json

import numpy as np
import pytest
from onnx import helper

from tests.cli_runner import run, snapshot
from tests.passes.helpers import model, weights
from trtc.precision.qdq import plan_quantization

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


def calibration_folder(folder, count=32):
    (folder / "calib").mkdir()
    rng = np.random.default_rng(3)
    for index in range(count // 8):
        np.save(folder / "calib" / f"batch{index}.npy", rng.standard_normal((8, 3, 64, 64)).astype(np.float32))


def report_of(spec):
    return json.loads((spec.parent / "build" / f"{spec.stem}.report.json").read_text())


INT8 = "precision={mode: int8, calibration: {data: calib, method: minmax, samples: 16, batch: 8, cache: build/demo.calib.json}}"


def test_int8_demo_runs_int8_convolutions_and_reuses_its_cache(demo_copy):
    calibration_folder(demo_copy.parent)
    result = run("build", demo_copy, "--set", INT8)
    assert result.exit_code == 0, result.stderr
    report = report_of(demo_copy)
    convolutions = [k for k in report["fusion"]["kernels"] if k["type"] == "correlation"]
    assert len(convolutions) == 5 and all(k["precision"] == "Int8" for k in convolutions)
    # The FLOPs of a quantized convolution count in its INT8 kernel, not in the kernel that
    # quantizes its input (which TensorRT's log also names after the convolution).
    stem = next(k for k in convolutions if "stem.conv" in k["onnx_nodes"])
    assert stem["flops"] == 32 * 16 * 3 * 3 * 3 * 32 * 32  # opt batch 32, 16 <- 3 channels, 3x3, 32x32 output
    calibration = report["calibration"]
    assert calibration["samples"] == 16 and calibration["cache"] == "written"
    assert calibration["not_quantized"] == {"fc": "GEMM too small to gain from quantization (weights [10, 32])"}
    assert calibration["residual_inputs"] == ["down.relu.out"]  # the skip branch of the residual Add
    assert report["accuracy"]["source"].startswith("every 4th sample of ")
    assert report["accuracy"]["samples"] == 8  # every 4th of 32 samples; calibration took 16 of the other 24
    assert min(o["cosine"] for o in report["accuracy"]["outputs"]) > 0.999
    cache = demo_copy.parent / "build" / "demo.calib.json"
    assert json.loads(cache.read_text())["method"] == "minmax"
    again = run("build", demo_copy, "--set", INT8, "--force")  # up to date otherwise: the cache is what is tested
    assert again.exit_code == 0 and report_of(demo_copy)["calibration"]["cache"] == "hit"
    np.save(demo_copy.parent / "calib" / "batch0.npy", np.ones((8, 3, 64, 64), np.float32))
    changed = run("build", demo_copy, "--set", INT8)
    assert changed.exit_code == 0
    assert (
        "warning: precision.calibration.cache: stale: " in changed.stderr
        and "was made for another data fingerprint" in changed.stderr
    )
    assert report_of(demo_copy)["calibration"]["cache"] == "written"


def test_fp8_build_runs_fp8_kernels(demo_copy):
    result = run(
        "build", demo_copy, "--set", "precision={mode: fp8, calibration: {data: random, samples: 16, method: minmax}}"
    )
    assert result.exit_code == 0, result.stderr
    convolutions = [k for k in report_of(demo_copy)["fusion"]["kernels"] if k["type"] == "correlation"]
    assert {k["precision"] for k in convolutions} == {"FP8"}
    # The printed figure says what it was computed on, as the reports do: random inputs here.
    assert "(minmax calibration on 16 samples of random inputs at the opt shape, cache not used)" in " ".join(
        result.stderr.split()
    )


def test_auto_fallback_returns_sensitive_layers_until_the_gate_holds(demo_copy, monkeypatch):
    strict = "precision={mode: int8, calibration: {data: random, samples: 16, method: entropy}}"
    before = snapshot(demo_copy.parent)
    failed = run("build", demo_copy, "--set", strict, "--set", "accuracy.min_cosine=0.9998")
    assert failed.exit_code == 3 and snapshot(demo_copy.parent) == sorted([*before, "build", "build/demo.report.json"])
    from trtc.precision import calibration_run

    calibrations = []
    real_collect = calibration_run.collect_ranges
    monkeypatch.setattr(
        calibration_run, "collect_ranges", lambda *args, **kw: calibrations.append(args[1]) or real_collect(*args, **kw)
    )
    rescued = run(
        "build",
        demo_copy,
        "--set",
        strict.replace("int8,", "int8, auto_fallback: true,"),
        "--set",
        "accuracy.min_cosine=0.9998",
    )
    assert rescued.exit_code == 0, rescued.stderr
    calibration = report_of(demo_copy)["calibration"]
    kept_back = calibration["auto_fallback"]["kept_back"]
    assert kept_back and set(kept_back).isdisjoint(calibration["quantized_layers"])
    assert len(calibration["auto_fallback"]["ranking"]) == 5
    ranked_on = calibration["auto_fallback"]["ranked_on"]  # no data given: said so
    assert ranked_on == {
        "source": "the first 8 calibration samples: random inputs at the opt shape",
        "kind": "random",
        "samples": 8,
    }
    # Ranges do not depend on which layers stay quantized: one calibration for every step.
    assert len(calibrations) == 1 and set(calibration["ranges"]) <= set(calibrations[0])


def test_plan_skips_small_gemms_keep_fp32_and_non_constant_weights():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Conv", ["x", "w2"], ["d"], name="kept"),
        helper.make_node("Conv", ["x", "dyn"], ["e"], name="dynamic"),
        helper.make_node("Flatten", ["c"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "g"], ["y"], name="tiny", transB=1),
    ]
    graph = model(
        nodes,
        {"x": [1, 3, 4, 4], "dyn": [2, 3, 1, 1]},
        ["y", "d", "e"],
        [weights("w", (2, 3, 1, 1)), weights("w2", (2, 3, 1, 1)), weights("g", (8, 32))],
    )
    plan = plan_quantization(graph, keep_fp32=("kept",))
    assert plan.layers == ["conv"] and plan.activations == ["x"]
    assert plan.skipped == {
        "kept": "precision.keep_fp32: kept",
        "dynamic": "weights are not constant",
        "tiny": "GEMM too small to gain from quantization (weights [8, 32])",
    }


def test_old_ir_models_listing_weights_as_inputs_quantize_with_a_static_batch(tmp_path):
    # IR 3 exporters list every initializer as a graph input, and often fix the batch at 1.
    from tests import models

    old = models.conv_bn_relu(batch=1)
    old.ir_version = 3
    old.graph.input.extend(
        helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)) for init in old.graph.initializer
    )
    models.save(old, tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nprecision: {mode: int8, calibration: {data: random, samples: 8}}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    report = report_of(spec)
    assert report["calibration"]["quantized_layers"] == ["conv0+bn0", "conv1"]
    assert [b["name"] for b in report["bindings"] if b["mode"] == "Input"] == ["x"]  # the weights stay weights
    assert (
        result.stderr.count("random inputs give ranges that fit no real data") == 1
    )  # said once, counted in the summary
    assert "  1 warning(s), printed above and kept in the report" in result.stderr
    assert any(k["precision"] == "Int8" for k in report["fusion"]["kernels"])


def test_int8_on_a_model_with_nothing_to_quantize_builds_and_says_so(tmp_path):
    from tests import models

    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "x"], ["y"], name="add"),
    ]
    models.save(model(nodes, {"x": ["N", 8]}, ["y"]), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\nprecision: {mode: int8, calibration: {data: random}}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    assert report_of(spec)["calibration"]["quantized_layers"] == []


def test_auto_fallback_ranks_layers_on_the_users_calibration_samples(demo_copy):
    calibration_folder(demo_copy.parent)
    result = run(
        "build",
        demo_copy,
        "--set",
        "precision={mode: int8, auto_fallback: true, calibration: {data: calib, samples: 16, batch: 8}}",
        "--set",
        "accuracy.min_cosine=0.9999",
    )
    assert result.exit_code == 0, result.stderr
    fallback = report_of(demo_copy)["calibration"]["auto_fallback"]
    assert fallback["ranked_on"] == {
        "source": f"the first 8 calibration samples not held out: 4 npy file(s) in {demo_copy.parent / 'calib'}",
        "kind": "real",
        "samples": 8,
    }
    assert fallback["kept_back"]


def test_only_the_residual_add_of_a_quantized_convolution_reads_the_dequantized_skip_branch():
    from trtc.precision.accuracy import measure_accuracy
    from trtc.precision.qdq import insert_qdq

    nodes = [
        helper.make_node("Relu", ["x"], ["skip"], name="relu"),
        helper.make_node("Conv", ["skip", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "skip"], ["res"], name="residual"),  # TensorRT fuses this into the conv
        helper.make_node("Add", ["skip", "bias_in"], ["other"], name="unrelated"),  # reads skip too: not a residual
        helper.make_node("Add", ["res", "other"], ["y"], name="out"),
    ]
    base = model(nodes, {"x": ["N", 8, 8, 8], "bias_in": ["N", 8, 8, 8]}, ["y"], [weights("w", (8, 8, 3, 3))])
    plan = plan_quantization(base)
    assert (plan.residuals, plan.residual_adds) == (["skip"], ["residual"])
    ranges = {"skip": 4.0}
    quantized = insert_qdq(base, plan, ranges, "int8")
    readers = {n.name: list(n.input) for n in quantized.graph.node}
    assert readers["residual"] == ["c", "skip/dq"] and readers["unrelated"] == ["skip", "bias_in"]
    rng = np.random.default_rng(0)
    feeds = {
        "x": rng.standard_normal((1, 8, 8, 8)).astype(np.float32),
        "bias_in": rng.standard_normal((1, 8, 8, 8)).astype(np.float32),
    }
    (accuracy,) = measure_accuracy(base, quantized, [feeds])
    assert accuracy.cosine > 0.999  # INT8 of the conv input and the skip branch only


def test_near_empty_weight_channels_keep_a_positive_scale_in_fp16(tmp_path):
    # A channel whose weights are (nearly) zero: amax/127 underflows FP16 and TensorRT's parser
    # refused the zero scale ("Scale coefficients must all be positive"), as on PP-OCRv4 det.
    import onnx
    from onnx import numpy_helper

    from tests import models

    base = models.conv_bn_relu(batch=1)
    for index, init in enumerate(base.graph.initializer):
        if init.name == "w0":
            weight = numpy_helper.to_array(init).copy()
            weight[0] = 0.0
            weight[1] = 1e-9
            base.graph.initializer[index].CopyFrom(numpy_helper.from_array(weight, "w0"))
    models.save(base, tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nprecision: {mode: int8, fallback: fp16, calibration: {data: random, samples: 8}}\n"
        "fusion: {passes: none}\ntarget: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    built = onnx.load(str(tmp_path / "model.onnx"))  # the user's file is untouched
    assert numpy_helper.to_array(next(i for i in built.graph.initializer if i.name == "w0"))[0].max() == 0.0
    assert "conv0" in report_of(spec)["calibration"]["quantized_layers"]


def test_opset_12_models_are_converted_not_just_renumbered_for_qdq(tmp_path):
    # Unsqueeze (13) and ReduceMean (18) take their axes as inputs in later opsets: raising the
    # number alone left PP-OCRv4 rec and ddddocr invalid ("This is an invalid model").
    from tests import models

    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("ReduceMean", ["r"], ["m"], name="mean", axes=[2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["m"], ["y"], name="unsqueeze", axes=[2]),
    ]
    models.save(
        model(nodes, {"x": ["N", 3, 16, 16]}, ["y"], [weights("w", (32, 3, 3, 3))], opset=12), tmp_path / "model.onnx"
    )
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\nprecision: {mode: int8, calibration: {data: random, samples: 8}}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    report = report_of(spec)
    assert report["calibration"]["quantized_layers"] == ["conv"]
    assert any(k["precision"] == "Int8" for k in report["fusion"]["kernels"])
    assert min(o["cosine"] for o in report["accuracy"]["outputs"]) > 0.99
    bf16 = run("build", spec, "--set", "precision=bf16")  # BFLOAT16 casts need opset 13 too
    assert bf16.exit_code == 0, bf16.stderr
    assert any(k["precision"] == "BFloat16" for k in report_of(spec)["fusion"]["kernels"])

"""INT8/FP8 with an FP16 fallback gets the FP16 safety analysis of `precision: fp16`, and a
reduced-precision model that is clearly off FP32 is a warning without any gate. Real onnxruntime
runs and TensorRT-RTX builds."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import models
from tests.cli_runner import run
from tests.passes.helpers import model
from trtc.graph.reference import Reference, with_outputs
from trtc.precision.accuracy import measure_accuracy
from trtc.precision.autocast import autocast

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

TARGET = "target: {compute_capabilities: [8.9]}\n"


def overflowing_between_quantized_convolutions(scale: float = 30.0):
    """conv_a -> relu -> square (|x| up to ~3e5 on inputs near 1: Inf in FP16) -> sqrt -> conv_b.
    Both convolutions are quantized; square and sqrt run in the fallback precision: the PP-OCRv4
    det failure in small. With conv_a's weights at `scale` 0.3, inputs of a few hundred overflow."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * scale).astype(np.float32), "wa"),
        numpy_helper.from_array((rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32), "wb"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Mul", ["r", "r"], ["squared"], name="square"),
        helper.make_node("Sqrt", ["squared"], ["s"], name="sqrt"),
        helper.make_node("Conv", ["s", "wb"], ["y"], name="conv_b", pads=[1, 1, 1, 1]),
    ]
    return model(nodes, {"x": ["N", 3, 16, 16]}, ["y"], weights)


def report_of(folder):
    return json.loads((folder / "build" / "spec.report.json").read_text())


def test_fp16_autocast_keeps_the_reader_of_an_overflowing_tensor_in_fp32():
    model = overflowing_between_quantized_convolutions()
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    names = [out for node in model.graph.node for out in node.output]
    magnitudes = {
        name: float(np.abs(v).max()) for name, v in Reference(with_outputs(model, names)).run(feeds).items()
    }  # as a build finds them
    assert magnitudes["squared"] > 65504
    converted = autocast(model, "fp16", magnitudes=magnitudes)
    assert {"square", "sqrt"} <= set(converted.kept)
    assert converted.kept["sqrt"].startswith("input squared reaches |x| = ")
    (accuracy,) = measure_accuracy(model, autocast(model, "fp16", magnitudes=magnitudes, emulate=True).model, [feeds])
    assert accuracy.nonfinite == 0 and accuracy.cosine > 0.999
    # Without ranges (the INT8 path's fallback before), square overflows and sqrt passes it on.
    (broken,) = measure_accuracy(model, autocast(model, "fp16", emulate=True).model, [feeds])
    assert broken.cosine < 0.9 or broken.nonfinite


def test_int8_with_fp16_fallback_keeps_overflowing_layers_in_fp32_and_holds_accuracy(tmp_path):
    models.save(overflowing_between_quantized_convolutions(), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\nprecision: {mode: int8, calibration: {data: random, samples: 16}}\n"
        "output: {onnx: build/converted.onnx}\n" + TARGET,
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    report = report_of(tmp_path)
    assert report["calibration"]["quantized_layers"] == ["conv_a", "conv_b"]
    # A quantized layer kept in FP32 reads its DequantizeLinear in FP32 too: still one INT8 kernel.
    assert {k["precision"] for k in report["fusion"]["kernels"] if k["type"] == "correlation"} == {"Int8"}
    kept = report["precision"]["kept_fp32"]
    # sqrt reads Inf in FP16, and over every calibration sample its own output passes 512 too
    assert kept["square"].startswith("output reaches |x| = ") and kept["sqrt"].startswith("output reaches |x| = ")
    built = onnx.load(str(tmp_path / "build" / "converted.onnx"))
    types = {v.name: v.type.tensor_type.elem_type for v in onnx.shape_inference.infer_shapes(built).graph.value_info}
    assert types["squared"] == TensorProto.FLOAT and types["s"] == TensorProto.FLOAT
    accuracy = report["accuracy"]
    assert (
        accuracy["emulated"] is True
    )  # the FP16 fallback is rounded in FP32: onnxruntime's own FP16 run hides overflow
    assert min(o["cosine"] for o in accuracy["outputs"]) > 0.99 and not any(o["nonfinite"] for o in accuracy["outputs"])
    assert "clearly off" not in result.stderr
    assert "## Kept in FP32" in (tmp_path / "build" / "spec.report.md").read_text()
    fp8 = run("build", spec, "--set", "precision.mode=fp8")
    assert fp8.exit_code == 0, fp8.stderr
    assert set(report_of(tmp_path)["precision"]["kept_fp32"]) >= {"square", "sqrt"}


def outlier_channel():
    """x * [1000, 1, 1, 1] -> conv whose weights ignore channel 0: the per-tensor INT8 range is set
    by the outlier channel, the channels that matter round to zero."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32)
    weight[:, 0] = 0.0
    inits = [
        numpy_helper.from_array(np.array([1000, 1, 1, 1], np.float32).reshape(1, 4, 1, 1), "gain"),
        numpy_helper.from_array(weight, "w"),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "gain"], ["scaled"], name="gain"),
        helper.make_node("Conv", ["scaled", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
    ]
    return model(nodes, {"x": ["N", 4, 8, 8]}, ["y"], inits)


def test_a_clearly_off_model_is_a_warning_naming_the_sensitive_layers_and_the_fix(tmp_path):
    models.save(outlier_channel(), tmp_path / "model.onnx")
    # Range migration lifts the quiet channels and rescues this model (test_migrate.py): off here.
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\n"
        "precision: {mode: int8, calibration: {data: random, samples: 16, migrate: false}}\n" + TARGET,
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr  # no gate: a warning, not a failure
    warnings = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("warning: int8: the converted model is clearly off FP32")
    ]
    assert len(warnings) == 1, result.stderr
    assert "on 64 random samples" in warnings[0] and "output 'y': cosine " in warnings[0]
    assert "most sensitive quantized layers: conv (relative L2 " in warnings[0]
    assert "precision.keep_fp32: [conv]" in warnings[0] and "precision.auto_fallback: true" in warnings[0]
    assert "precision.fallback: fp32" in warnings[0]
    assert report_of(tmp_path)["calibration"]["sensitivity"]["ranking"][0]["layer"] == "conv"


def cancellation():
    """y = (0.1 x + 500) - 500: FP16 holds 500 to 0.25, so the signal (0.1 x) drowns in rounding;
    no tensor exceeds the magnitude rule's limit, so everything converts."""
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "tenth"),
        numpy_helper.from_array(np.array(500.0, np.float32), "offset"),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "tenth"], ["small"], name="scale"),
        helper.make_node("Add", ["small", "offset"], ["shifted"], name="shift"),
        helper.make_node("Sub", ["shifted", "offset"], ["y"], name="unshift"),
    ]
    return model(nodes, {"x": ["N", 64]}, ["y"], inits)


def test_fp16_clearly_off_on_random_inputs_says_the_data_is_random_before_blaming_layers(tmp_path):
    """magika's file-type model (int32 bytes): FP16 measured on random inputs (bytes 0..1) gave cosine
    0.65 and a warning to keep layers in FP32; on bytes 0..255 the same FP16 graph gives 1.000000."""
    models.save(cancellation(), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 4\nprecision: fp16\n" + TARGET)
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if "clearly off FP32" in line)
    assert "on 64 random samples" in warning
    assert "random inputs may be far from your data: measure on accuracy.data" in warning
    assert "inputs: {name: {range: [lo, hi]}}" in warning and "precision.keep_fp32" in warning
    (tmp_path / "val").mkdir()
    for index in range(8):
        np.save(tmp_path / "val" / f"{index}.npy", np.random.default_rng(index).standard_normal((1, 64)).astype("f4"))
    spec.write_text(spec.read_text() + "accuracy: {data: val}\n")
    result = run("build", spec)
    warning = next(line for line in result.stderr.splitlines() if "clearly off FP32" in line)
    assert "random" not in warning

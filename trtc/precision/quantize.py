"""INT8 / FP8 post-training quantization for `trtc build`: plan the Q/DQ placement, calibrate the
activation ranges (or reuse a matching cache), insert Q/DQ, put the rest in the fallback
precision, and measure accuracy on held-out samples. The FP16 fallback gets autocast's FP16 rules
(overflowing layers stay FP32, ranges from a reference run) and is measured on a graph that rounds
through FP16, as `precision: fp16` is. With `auto_fallback`, the layers whose quantization hurts most
return to the fallback precision until the accuracy gate holds; a model clearly off FP32 without a
gate gets the same ranking, for the warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from trtc.errors import AccuracyGateError, SpecError
from trtc.graph.profiles import ModelInput
from trtc.graph.random_inputs import random_feeds
from trtc.precision.accuracy import clearly_off, measure_accuracy
from trtc.precision.accuracy_data import AccuracySamples
from trtc.precision.autocast import autocast
from trtc.precision.bias_correction import bias_shifts
from trtc.precision.calibrate import CALIBRATOR, cache_document, cache_key, collect_ranges, read_cache, tensor_names
from trtc.precision.data import HOLD_OUT_EVERY, SampleSource
from trtc.precision.equalize import depthwise_inputs, equalized_section
from trtc.precision.opset import with_opset
from trtc.precision.qdq import FP16_SMALLEST, QuantPlan, fallback_residuals, insert_qdq, near_outputs, plan_quantization
from trtc.spec.model import ShapeRange, Spec

AUTO_FALLBACK_STEPS = 16  # layers returned to fallback at most, one build's worth of patience
# Measured on YOLOv8n, MobileNetV3 and PP-OCRv4 det (benchmarks/real_int8.py): mse ranges, with the
# last three quantized layers before an output unclipped, meet all three accuracy goals; minmax
# everywhere missed PP-OCRv4 det's, mse everywhere YOLOv8n's.
DEFAULT_METHOD = "mse"
UNCLIPPED_NEAR_OUTPUTS = 2


@dataclass
class Quantized:
    model: onnx.ModelProto
    section: dict
    measured: onnx.ModelProto | None = None  # what onnxruntime runs for accuracy (rounding emulated in FP32)
    kept_fp32: dict[str, str] = field(default_factory=dict)  # fallback nodes the FP16 rules keep in FP32, and why
    cache_file: tuple[Path, str] | None = None  # written with the build's outputs
    warnings: list[str] = field(default_factory=list)
    calibrated: "Calibrated | None" = None


def calibration_data(spec: Spec) -> str:
    """Where the spec's calibration samples come from; a spec error when INT8/FP8 has none."""
    if "data" not in spec.precision.calibration:
        raise SpecError(
            f"precision.calibration.data: {spec.precision.mode} needs calibration data: a folder of .npy/.npz/images, "
            "python:module:function, or 'random' for a smoke test"
        )
    return spec.precision.calibration["data"]


@dataclass
class Calibrated:
    """Activation ranges and where they came from. They do not depend on which layers are
    quantized, so auto_fallback's steps reuse one calibration."""

    ranges: dict[str, float]
    channel_ranges: dict[str, list[float]]  # per channel, for the inputs of depthwise convolutions
    bias_shifts: dict[str, list[float]]  # per layer, what INT8 adds to each output channel
    samples: int
    status: str  # the cache: "hit", "written", "not used"
    description: str
    cache_file: tuple[Path, str] | None
    warnings: list[str]


def calibrate(
    model: onnx.ModelProto,
    spec: Spec,
    inputs: list[ModelInput],
    profile: dict[str, ShapeRange],
    model_sha256: str,
    activations: list[str],
    progress: Callable[[int, int], None] | None = None,
    hold_out: bool = False,
    channel_tensors: list[str] = (),
    corrected_layers: list[str] = (),
    unclipped: list[str] = (),
) -> Calibrated:
    """Ranges of `activations`, per-channel ranges of `channel_tensors` and the bias shifts of
    `corrected_layers` (one more pass over the data), from the cache when it matches. `hold_out`:
    skip the samples accuracy is measured on (every HOLD_OUT_EVERY-th)."""
    settings = spec.precision.calibration
    method = settings.get("method", DEFAULT_METHOD)
    percentile, samples = settings.get("percentile", 99.99), settings.get("samples", 512)
    # No larger than the engine's own batch: a model exported with a static batch of 1 takes 1.
    batch = min([settings.get("batch", 16), *(r.max[0] for r in profile.values() if r.max)])
    calibration_data(spec)
    warnings: list[str] = []
    base = spec.source.parent if spec.source else Path.cwd()
    if settings["data"] == "random":
        warnings.append(
            "precision.calibration.data: random inputs give ranges that fit no real data; use them for smoke tests only"
        )
        description = "random inputs at the opt shape"
        fingerprint = f"random at {sorted((name, r.opt[1:]) for name, r in profile.items())}"

        def batches():
            return _random_batches(inputs, profile, spec, batch, samples)
    else:
        source = SampleSource(settings["data"], "precision.calibration.data", inputs, base, settings.get("preprocess"))
        fingerprint, description = source.fingerprint(), source.description

        def batches():
            return source.batches(batch, samples, "calibration" if hold_out else "all")

    cache_path = (base / settings["cache"]).resolve() if settings.get("cache") else None
    key = cache_key(
        model_sha256,
        model,
        fingerprint,
        {
            "method": method,
            "percentile": percentile if method == "percentile" else None,
            "sample_limit": samples,
            "batch": batch,
            "preprocess": settings.get("preprocess"),
            "calibrator": CALIBRATOR,
            "equalize": settings.get("equalize", True),
            "bias_correction": settings.get("bias_correction", True),
            "unclipped": sorted(unclipped),
            "held_out": f"every {HOLD_OUT_EVERY}th sample" if hold_out else None,
        },
        _input_settings(spec),
    )
    ranges, used, status, found = read_cache(
        cache_path,
        key,
        activations,
        tensor_names(model),
        {"channel_ranges": channel_tensors, "bias_shifts": corrected_layers},
    )
    channel_ranges, shifts = found.get("channel_ranges", {}), found.get("bias_shifts", {})
    if status.startswith(("stale", "ignored")):
        warnings.append(f"precision.calibration.cache: {status}; calibrating again")
    if ranges is None:
        ranges, used, channel_ranges = collect_ranges(
            model,
            activations,
            batches(),
            method,
            percentile,
            (lambda done: progress(done, samples)) if progress else None,
            channel_tensors,
            unclipped,
        )
        floor = FP16_SMALLEST if (spec.precision.fallback or "fp16") == "fp16" else 0.0
        shifts = (
            bias_shifts(model, list(corrected_layers), ranges, channel_ranges, batches(), floor)
            if corrected_layers
            else {}
        )
        status = "written" if cache_path else "not used"
    per_channel = {"channel_ranges": channel_ranges, "bias_shifts": shifts}
    cache_file = (
        (cache_path, cache_document(key, ranges, used, per_channel)) if cache_path and status == "written" else None
    )
    return Calibrated(ranges, channel_ranges, shifts, used, status, description, cache_file, warnings)


def quantize(
    model: onnx.ModelProto,
    spec: Spec,
    inputs: list[ModelInput],
    profile: dict[str, ShapeRange],
    model_sha256: str,
    progress: Callable[[int, int], None] | None = None,
    exclude: frozenset[str] = frozenset(),
    calibrated: Calibrated | None = None,
    magnitudes: dict[str, float] | None = None,
    hold_out: bool = False,
) -> Quantized:
    settings = spec.precision.calibration
    mode, method = spec.precision.mode, settings.get("method", DEFAULT_METHOD)
    percentile = settings.get("percentile", 99.99)
    plan = plan_quantization(model, spec.precision.keep_fp32, exclude)
    depthwise = (
        depthwise_inputs(model, plan.layers, plan.residuals, plan.activations) if settings.get("equalize", True) else []
    )
    unclipped = near_outputs(model, plan.layers, settings.get("unclipped_near_outputs", UNCLIPPED_NEAR_OUTPUTS))
    if calibrated is None:  # auto_fallback's later steps can need the ranges of new residual inputs
        extra = fallback_residuals(model, plan) if spec.precision.auto_fallback else []
        corrected = plan.layers if mode == "int8" and settings.get("bias_correction", True) else []
        calibrated = calibrate(
            model,
            spec,
            inputs,
            profile,
            model_sha256,
            plan.activations + extra,
            progress,
            hold_out,
            depthwise,
            corrected,
            unclipped,
        )
    ranges = {t: calibrated.ranges[t] for t in plan.activations}
    channel_ranges = {t: calibrated.channel_ranges[t] for t in depthwise if t in calibrated.channel_ranges}
    shifts = {layer: calibrated.bias_shifts[layer] for layer in plan.layers if layer in calibrated.bias_shifts}
    fallback = spec.precision.fallback or "fp16"
    with_qdq = insert_qdq(
        model, plan, ranges, mode, FP16_SMALLEST if fallback == "fp16" else 0.0, channel_ranges, shifts
    )
    quantized, measured, kept = _with_fallback(with_qdq, fallback, spec, magnitudes or {})
    section = {
        "mode": mode,
        "method": method,
        "percentile": percentile if method == "percentile" else None,
        "samples": calibrated.samples,
        "data": calibrated.description,
        "cache": calibrated.status,
        "fallback": fallback,
        "quantized_layers": plan.layers,
        "not_quantized": plan.skipped,
        "residual_inputs": plan.residuals,
        "unclipped_near_outputs": unclipped if method != "minmax" else [],  # tensors kept at their largest |value|
        "equalized_inputs": equalized_section(model, plan.layers, ranges, channel_ranges),
        "bias_corrected": {
            layer: round(float(np.abs(shift).max()), 6) for layer, shift in shifts.items()
        },  # largest shift
        "ranges": {t: round(v, 6) for t, v in sorted(ranges.items(), key=lambda item: -item[1])},
    }
    return Quantized(quantized, section, measured, kept, calibrated.cache_file, list(calibrated.warnings), calibrated)


def sensitivity(
    model: onnx.ModelProto, plan: QuantPlan, ranges: dict[str, float], mode: str, feeds: dict[str, np.ndarray]
) -> list[tuple[str, float]]:
    """Output error (relative L2, worst output) of quantizing each layer alone, worst first."""
    scores = []
    for layer in plan.layers:
        alone = QuantPlan(layers=[layer], activations=[_input_of(model, layer)], residuals=[])
        results = measure_accuracy(model, insert_qdq(model, alone, ranges, mode), [feeds])
        scores.append((layer, max(r.rel_l2_error for r in results)))
    return sorted(scores, key=lambda item: -item[1])


def quantize_until_accurate(
    model, spec, inputs, profile, model_sha256, check, progress, samples: AccuracySamples, magnitudes: dict[str, float]
) -> tuple[Quantized, dict]:
    """Quantize; when the accuracy gate fails and auto_fallback is on, return the most sensitive
    layers to the fallback precision one at a time until it holds. Layers are ranked on the first
    of the accuracy `samples` (held out from calibration); `magnitudes` feed the FP16 rules."""
    # Raised once, before planning: every step below then works on the same converted graph.
    model = with_opset(
        model, 19 if spec.precision.mode == "fp8" or (spec.precision.fallback or "fp16") != "fp32" else 13
    )
    result = quantize(
        model, spec, inputs, profile, model_sha256, progress, magnitudes=magnitudes, hold_out=samples.held_out
    )
    calibrated = result.calibrated

    def ranked() -> list[dict]:
        scores = sensitivity(
            model,
            plan_quantization(model, spec.precision.keep_fp32),
            calibrated.ranges,
            spec.precision.mode,
            samples.first_batch(),
        )
        return [{"layer": layer, "rel_l2_error": error} for layer, error in scores]

    try:
        accuracy = check(result)
    except AccuracyGateError as failure:
        if not spec.precision.auto_fallback:
            raise
        ranked_on, ranking = samples.source, ranked()
        kept_back: list[str] = []
        for entry in ranking[:AUTO_FALLBACK_STEPS]:
            kept_back.append(entry["layer"])
            result = quantize(
                model,
                spec,
                inputs,
                profile,
                model_sha256,
                progress,
                exclude=frozenset(kept_back),
                calibrated=calibrated,
                magnitudes=magnitudes,
            )
            try:
                accuracy = check(result)
            except AccuracyGateError:
                continue
            result.section["auto_fallback"] = {"kept_back": kept_back, "ranked_on": ranked_on, "ranking": ranking}
            return result, accuracy
        raise AccuracyGateError(
            f"{failure.message}; auto_fallback returned {len(kept_back)} layer(s) to "
            f"{spec.precision.fallback or 'fp16'} and the gate still fails",
            failure.details,
        ) from None
    if clearly_off(accuracy["outputs"]):  # no gate failed, yet the build will warn: say which layers hurt most
        result.section["sensitivity"] = {"ranked_on": samples.source, "ranking": ranked()}
    return result, accuracy


def _with_fallback(model: onnx.ModelProto, fallback: str, spec: Spec, magnitudes: dict[str, float]):
    """(the graph TensorRT builds, the graph accuracy is measured on, nodes kept FP32 and why). The
    FP16/BF16 fallback is autocast's, rules included; it is measured rounded through FP16/BF16 in
    FP32, since onnxruntime's FP16 CPU run would hide overflow (and it has no BF16 kernels)."""
    if fallback == "fp32":
        return model, model, {}
    model = with_opset(model, 19)  # Q/DQ with FP16/BF16 scales (done already by quantize_until_accurate)
    settings = (fallback, spec.precision.keep_fp32, spec.precision.keep_io_types, magnitudes)
    converted = autocast(model, *settings)
    return converted.model, autocast(model, *settings, emulate=True).model, converted.kept


def _input_settings(spec: Spec) -> dict:
    """Pinned values and value ranges, as the calibration cache key holds them."""
    return {
        name: {"value": s.value, "range": s.value_range}
        for name, s in sorted(spec.input_settings.items())
        if s.value is not None or s.value_range
    }


def _random_batches(inputs, profile, spec, batch, samples):
    shapes = {name: (batch, *r.opt[1:]) for name, r in profile.items()}
    ranges = {name: s.value_range for name, s in spec.input_settings.items() if s.value_range}
    for index in range(-(-samples // batch)):
        yield random_feeds(inputs, shapes, ranges, seed=index)


def _input_of(model: onnx.ModelProto, layer: str) -> str:
    return next(node.input[0] for node in model.graph.node if node.name == layer)

"""INT8 / FP8 post-training quantization for `trtc build`: plan the Q/DQ placement, calibrate the
activation ranges (or reuse a matching cache), insert Q/DQ, put the rest in the fallback
precision, and measure accuracy on held-out samples. With `auto_fallback`, the layers whose
quantization hurts most return to the fallback precision until the accuracy gate holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from trtc.errors import AccuracyGateError, SpecError
from trtc.graph.profiles import ModelInput
from trtc.graph.random_inputs import random_feeds
from trtc.precision.accuracy import measure_accuracy
from trtc.precision.autocast import autocast
from trtc.precision.bias_correction import bias_shifts
from trtc.precision.calibrate import cache_document, cache_key, collect_ranges, read_cache
from trtc.precision.data import SampleSource
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
    measured: onnx.ModelProto | None = None  # what onnxruntime runs for accuracy (no BF16 kernels there)
    held_out_from: int = 0  # calibration samples used (accuracy skips them)
    cache_file: tuple[Path, str] | None = None  # written with the build's outputs
    warnings: list[str] = field(default_factory=list)
    calibrated: "Calibrated | None" = None


def calibration_data(spec: Spec) -> str:
    """Where the spec's calibration samples come from; a spec error when INT8/FP8 has none."""
    if "data" not in spec.precision.calibration:
        raise SpecError(f"precision.calibration.data: {spec.precision.mode} needs calibration data: a folder of .npy/.npz/images, "
                        "python:module:function, or 'random' for a smoke test")
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
    held_out_from: int  # calibration samples used (accuracy skips them)


def calibrate(model: onnx.ModelProto, spec: Spec, inputs: list[ModelInput], profile: dict[str, ShapeRange], model_sha256: str,
              activations: list[str], progress: Callable[[int, int], None] | None = None, channel_tensors: list[str] = (),
              corrected_layers: list[str] = (), unclipped: list[str] = ()) -> Calibrated:
    """Ranges of `activations`, per-channel ranges of `channel_tensors` and the bias shifts of
    `corrected_layers` (one more pass over the data), from the cache when it matches."""
    settings = spec.precision.calibration
    method = settings.get("method", DEFAULT_METHOD)
    percentile, samples = settings.get("percentile", 99.99), settings.get("samples", 512)
    # No larger than the engine's own batch: a model exported with a static batch of 1 takes 1.
    batch = min([settings.get("batch", 16), *(r.max[0] for r in profile.values() if r.max)])
    calibration_data(spec)
    warnings: list[str] = []
    base = spec.source.parent if spec.source else Path.cwd()
    if settings["data"] == "random":
        warnings.append("precision.calibration.data: random inputs give ranges that fit no real data; use them for smoke tests only")
        fingerprint, description = "random", "random inputs at the opt shape"
        def batches():
            return _random_batches(inputs, profile, spec, batch, samples)
    else:
        source = SampleSource(settings["data"], "precision.calibration.data", inputs, base, settings.get("preprocess"))
        fingerprint, description = source.fingerprint(), source.description

        def batches():
            return source.batches(batch, samples)
    cache_path = (base / settings["cache"]).resolve() if settings.get("cache") else None
    key = {**cache_key(model_sha256, fingerprint, method, percentile), "equalize": settings.get("equalize", True),
           "unclipped": sorted(unclipped)}
    ranges, status, found = read_cache(cache_path, key, activations, {"channel_ranges": channel_tensors, "bias_shifts": corrected_layers})
    channel_ranges, shifts = found.get("channel_ranges", {}), found.get("bias_shifts", {})
    used = samples
    if status.startswith("stale"):
        warnings.append(f"precision.calibration.cache: {status}; calibrating again")
    if ranges is None:
        ranges, used, channel_ranges = collect_ranges(model, activations, batches(), method, percentile,
                                                      (lambda done: progress(done, samples)) if progress else None, channel_tensors,
                                                      unclipped)
        floor = FP16_SMALLEST if (spec.precision.fallback or "fp16") == "fp16" else 0.0
        shifts = bias_shifts(model, list(corrected_layers), ranges, channel_ranges, batches(), floor) if corrected_layers else {}
        status = "written" if cache_path else "not used"
    per_channel = {"channel_ranges": channel_ranges, "bias_shifts": shifts}
    cache_file = (cache_path, cache_document(key, ranges, used, per_channel)) if cache_path and status == "written" else None
    return Calibrated(ranges, channel_ranges, shifts, used, status, description, cache_file, warnings, used if settings["data"] != "random" else 0)


def quantize(model: onnx.ModelProto, spec: Spec, inputs: list[ModelInput], profile: dict[str, ShapeRange],
             model_sha256: str, progress: Callable[[int, int], None] | None = None, exclude: frozenset[str] = frozenset(),
             calibrated: Calibrated | None = None) -> Quantized:
    settings = spec.precision.calibration
    mode, method = spec.precision.mode, settings.get("method", DEFAULT_METHOD)
    percentile = settings.get("percentile", 99.99)
    plan = plan_quantization(model, spec.precision.keep_fp32, exclude)
    depthwise = depthwise_inputs(model, plan.layers, plan.residuals, plan.activations) if settings.get("equalize", True) else []
    unclipped = near_outputs(model, plan.layers, settings.get("unclipped_near_outputs", UNCLIPPED_NEAR_OUTPUTS))
    if calibrated is None:  # auto_fallback's later steps can need the ranges of new residual inputs
        extra = fallback_residuals(model, plan) if spec.precision.auto_fallback else []
        corrected = plan.layers if mode == "int8" and settings.get("bias_correction", True) else []
        calibrated = calibrate(model, spec, inputs, profile, model_sha256, plan.activations + extra, progress, depthwise, corrected,
                               unclipped)
    ranges = {t: calibrated.ranges[t] for t in plan.activations}
    channel_ranges = {t: calibrated.channel_ranges[t] for t in depthwise if t in calibrated.channel_ranges}
    shifts = {layer: calibrated.bias_shifts[layer] for layer in plan.layers if layer in calibrated.bias_shifts}
    fallback = spec.precision.fallback or "fp16"
    with_qdq = insert_qdq(model, plan, ranges, mode, FP16_SMALLEST if fallback == "fp16" else 0.0, channel_ranges, shifts)
    quantized = _with_fallback(with_qdq, fallback, spec)
    section = {
        "mode": mode, "method": method, "percentile": percentile if method == "percentile" else None, "samples": calibrated.samples,
        "data": calibrated.description, "cache": calibrated.status, "fallback": fallback, "quantized_layers": plan.layers,
        "not_quantized": plan.skipped, "residual_inputs": plan.residuals,
        "unclipped_near_outputs": unclipped if method != "minmax" else [],  # tensors kept at their largest |value|
        "equalized_inputs": equalized_section(model, plan.layers, ranges, channel_ranges),
        "bias_corrected": {layer: round(float(np.abs(shift).max()), 6) for layer, shift in shifts.items()},  # largest shift
        "ranges": {t: round(v, 6) for t, v in sorted(ranges.items(), key=lambda item: -item[1])},
    }
    measured = with_qdq if fallback == "bf16" else quantized
    return Quantized(quantized, section, measured, calibrated.held_out_from, calibrated.cache_file, list(calibrated.warnings), calibrated)


def sensitivity(model: onnx.ModelProto, plan: QuantPlan, ranges: dict[str, float], mode: str, feeds: dict[str, np.ndarray]) -> list[tuple[str, float]]:
    """Output error (relative L2, worst output) of quantizing each layer alone, worst first."""
    scores = []
    for layer in plan.layers:
        alone = QuantPlan(layers=[layer], activations=[_input_of(model, layer)], residuals=[])
        results = measure_accuracy(model, insert_qdq(model, alone, ranges, mode), [feeds])
        scores.append((layer, max(r.rel_l2_error for r in results)))
    return sorted(scores, key=lambda item: -item[1])


def quantize_until_accurate(model, spec, inputs, profile, model_sha256, check, progress=None, ranking_batch=None) -> tuple[Quantized, dict]:
    """Quantize; when the accuracy gate fails and auto_fallback is on, return the most sensitive
    layers to the fallback precision one at a time until it holds. `ranking_batch(skip)` gives
    (description, feeds) for ranking the layers: the accuracy samples, held out from calibration."""
    # Raised once, before planning: every step below then works on the same converted graph.
    model = with_opset(model, 19 if spec.precision.mode == "fp8" or (spec.precision.fallback or "fp16") != "fp32" else 13)
    result = quantize(model, spec, inputs, profile, model_sha256, progress)
    try:
        return result, check(result)
    except AccuracyGateError as failure:
        if not spec.precision.auto_fallback:
            raise
        plan = plan_quantization(model, spec.precision.keep_fp32)
        calibrated = result.calibrated
        ranges = calibrated.ranges
        if ranking_batch is not None:
            ranked_on, feeds = ranking_batch(result.held_out_from)
        else:
            ranked_on, feeds = "random inputs at the opt shape", random_feeds(inputs, {n: r.opt for n, r in profile.items()}, seed=7)
        ranking = sensitivity(model, plan, ranges, spec.precision.mode, feeds)
        kept_back: list[str] = []
        for layer, _ in ranking[:AUTO_FALLBACK_STEPS]:
            kept_back.append(layer)
            result = quantize(model, spec, inputs, profile, model_sha256, progress, exclude=frozenset(kept_back), calibrated=calibrated)
            try:
                accuracy = check(result)
            except AccuracyGateError:
                continue
            result.section["auto_fallback"] = {"kept_back": kept_back, "ranked_on": ranked_on,
                                               "ranking": [{"layer": l, "rel_l2_error": e} for l, e in ranking]}
            return result, accuracy
        raise AccuracyGateError(f"{failure.message}; auto_fallback returned {len(kept_back)} layer(s) to "
                                f"{spec.precision.fallback or 'fp16'} and the gate still fails", failure.details) from None


def _with_fallback(model: onnx.ModelProto, fallback: str, spec: Spec) -> onnx.ModelProto:
    if fallback == "fp32":
        return model
    model = with_opset(model, 19)  # Q/DQ with FP16/BF16 scales (done already by quantize_until_accurate)
    return autocast(model, fallback, spec.precision.keep_fp32, spec.precision.keep_io_types).model


def _random_batches(inputs, profile, spec, batch, samples):
    shapes = {name: (batch, *r.opt[1:]) for name, r in profile.items()}
    ranges = {name: s.value_range for name, s in spec.input_settings.items() if s.value_range}
    for index in range(-(-samples // batch)):
        yield random_feeds(inputs, shapes, ranges, seed=index)


def _input_of(model: onnx.ModelProto, layer: str) -> str:
    return next(node.input[0] for node in model.graph.node if node.name == layer)

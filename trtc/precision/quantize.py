"""INT8 / FP8 post-training quantization for `trtc build`: plan the Q/DQ placement, calibrate the
activation ranges (or reuse a matching cache), insert Q/DQ, put the rest in the fallback
precision, and measure accuracy on held-out samples. The FP16 fallback gets autocast's FP16 rules
(overflowing layers stay FP32, ranges from a reference run) and is measured on a graph that rounds
through FP16, as `precision: fp16` is. With `auto_fallback`, layers return to the fallback
precision until the accuracy gate holds (fallback.py); a failed gate, and a model clearly off FP32
without one, get the same ranking of layers, for the report and the warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx

from trtc.backend.trt_import import backend_identity
from trtc.errors import AccuracyGateError
from trtc.graph.profiles import ModelInput
from trtc.graph.random_inputs import random_feeds
from trtc.precision.accuracy import clearly_off
from trtc.precision.accuracy_data import AccuracySamples
from trtc.precision.autocast import autocast
from trtc.precision.bias_correction import SAMPLES as BIAS_SAMPLES
from trtc.precision.bias_correction import bias_shifts
from trtc.precision.calibrate import CALIBRATOR, cache_document, cache_key, collect_ranges, read_cache, tensor_names
from trtc.precision.concat_split import SAMPLES as SPLIT_SAMPLES
from trtc.precision.concat_split import split_concat_readers
from trtc.precision.data import HOLD_OUT_EVERY, SampleSource
from trtc.precision.equalize import depthwise_inputs, equalized_section
from trtc.precision.fallback import RANKING_SAMPLES, Ranking, fall_back_until_accurate, first_samples, rank_layers
from trtc.precision.magnitudes import LargestValues, activation_ranges
from trtc.precision.migrate import choose_strengths, migrated_section, migration_inputs
from trtc.precision.opset import with_opset
from trtc.precision.qdq import FP16_SMALLEST, fallback_residuals, insert_qdq, near_outputs, plan_quantization
from trtc.spec.model import ShapeRange, Spec
from trtc.spec.preflight import calibration_data


@dataclass
class Quantized:
    model: onnx.ModelProto
    section: dict
    measured: onnx.ModelProto | None = None  # what onnxruntime runs for accuracy (rounding emulated in FP32)
    kept_fp32: dict[str, str] = field(default_factory=dict)  # fallback nodes the FP16 rules keep in FP32, and why
    cache_file: tuple[Path, str] | None = None  # written with the build's outputs
    warnings: list[str] = field(default_factory=list)
    calibrated: "Calibrated | None" = None


@dataclass
class Calibrated:
    """Activation ranges and where they came from. They do not depend on which layers are
    quantized, so auto_fallback's steps reuse one calibration."""

    ranges: dict[str, float]
    channel_ranges: dict[str, list[float]]  # per channel: depthwise convolutions' inputs, migration candidates
    bias_shifts: dict[str, list[float]]  # per layer, what INT8 adds to each output channel
    strengths: dict[str, float]  # migrated inputs of dense layers and how strongly (migrate.py)
    largest: dict[str, float] | None  # max |x| per float tensor, for the FP16 fallback's rules
    samples: int
    status: str  # the cache: "hit", "written", "not used"
    description: str
    kind: str  # "real" (the user's data) or "random"
    cache_file: tuple[Path, str] | None
    warnings: list[str]


@dataclass
class CalibrationStream:
    """The calibration samples as calibration reads them: `batch` at a time, without the ones
    held out for accuracy."""

    description: str
    fingerprint: Callable[[], str]  # hashes the data files: only when a cache key needs it
    kind: str  # "real" (the user's data) or "random"
    batch: int
    read: Callable[[int], Iterator[dict[str, np.ndarray]]]  # at most this many samples -> batches


def calibration_stream(
    spec: Spec, inputs: list[ModelInput], profile: dict[str, ShapeRange], hold_out: bool
) -> CalibrationStream:
    settings = spec.precision.calibration
    # No larger than the engine's own batch: a model exported with a static batch of 1 takes 1.
    batch = min([settings.batch, *(r.max[0] for r in profile.values() if r.max)])
    if calibration_data(spec) == "random":
        fingerprint = f"random at {sorted((name, r.opt[1:]) for name, r in profile.items())}"
        return CalibrationStream(
            "random inputs at the opt shape",
            lambda: fingerprint,
            "random",
            batch,
            lambda limit: _random_batches(inputs, profile, spec, batch, limit),
        )
    base = spec.source.parent if spec.source else Path.cwd()
    source = SampleSource(settings.data, "precision.calibration.data", inputs, base, settings.preprocess)
    return CalibrationStream(
        source.description,
        source.fingerprint,
        "real",
        batch,
        lambda limit: source.batches(batch, limit, "calibration" if hold_out else "all"),
    )


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
    migrating: dict[str, int] | None = None,
    layers: list[str] = (),
) -> Calibrated:
    """Ranges of `activations`, per-channel ranges of `channel_tensors` (depthwise inputs) and of
    the `migrating` candidates (with their channel axes), the migration strength of each candidate
    (its readers among `layers`; one pass over the first samples) and the bias shifts of
    `corrected_layers` (one more pass), from the cache when it matches. `hold_out`: skip the
    samples accuracy is measured on (every HOLD_OUT_EVERY-th)."""
    settings = spec.precision.calibration
    method, percentile, samples = settings.method, settings.percentile, settings.samples
    stream = calibration_stream(spec, inputs, profile, hold_out)
    batch, fingerprint, description = stream.batch, stream.fingerprint(), stream.description
    # The FP16 fallback's range rules read every float tensor, gathered in calibration's own runs.
    largest = LargestValues() if spec.precision.fallback == "fp16" else None
    warnings: list[str] = []
    if stream.kind == "random":
        warnings.append(
            "precision.calibration.data: random inputs give ranges that fit no real data; use them for smoke tests only"
        )

    def batches():
        return stream.read(samples)

    base = spec.source.parent if spec.source else Path.cwd()
    cache_path = (base / settings.cache).resolve() if settings.cache else None
    key = cache_key(
        model_sha256,
        model,
        fingerprint,
        {
            "method": method,
            "percentile": percentile if method == "percentile" else None,
            "sample_limit": samples,
            "batch": batch,
            "preprocess": settings.preprocess,
            "calibrator": CALIBRATOR,
            "equalize": settings.equalize,
            "bias_correction": settings.bias_correction and f"first {BIAS_SAMPLES} samples",
            "unclipped": sorted(unclipped),
            "held_out": f"every {HOLD_OUT_EVERY}th sample" if hold_out else None,
            "fp16_ranges": "largest |x| of every float tensor" if largest is not None else None,
            "migrate": settings.migrate,
        },
        _input_settings(spec),
    )
    migrating = migrating or {}
    channel_axes = {**dict.fromkeys(channel_tensors, 1), **migrating}
    ranges, used, status, found = read_cache(
        cache_path,
        key,
        activations,
        tensor_names(model),
        {
            "channel_ranges": channel_axes,
            "bias_shifts": corrected_layers,
            "migration": migrating,
            **({"largest_values": None} if largest is not None else {}),
        },
    )
    channel_ranges, shifts = found.get("channel_ranges", {}), found.get("bias_shifts", {})
    strengths = {t: values[0] for t, values in found.get("migration", {}).items() if values and values[0] > 0}
    largest_values = found.get("largest_values")
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
            channel_axes,
            unclipped,
            largest,
        )
        largest_values = largest.largest if largest is not None else None
        floor = FP16_SMALLEST if spec.precision.fallback == "fp16" else 0.0
        strengths = choose_strengths(model, migrating, list(layers), ranges, batches, floor)
        applied = {t: channel_ranges[t] for t in [*channel_tensors, *strengths]}
        shifts = (
            bias_shifts(model, list(corrected_layers), ranges, applied, batches(), floor, strengths=strengths)
            if corrected_layers
            else {}
        )
        status = "written" if cache_path else "not used"
    per_channel = {
        "channel_ranges": channel_ranges,
        "bias_shifts": shifts,
        "largest_values": largest_values,
        "migration": {t: [strengths.get(t, 0.0)] for t in migrating},
    }
    cache_file = (
        (cache_path, cache_document(key, ranges, used, per_channel)) if cache_path and status == "written" else None
    )
    return Calibrated(
        ranges,
        channel_ranges,
        shifts,
        strengths,
        largest_values,
        used,
        status,
        description,
        stream.kind,
        cache_file,
        warnings,
    )


def quantize(
    model: onnx.ModelProto,
    spec: Spec,
    inputs: list[ModelInput],
    profile: dict[str, ShapeRange],
    model_sha256: str,
    progress: Callable[[int, int], None] | None = None,
    exclude: frozenset[str] = frozenset(),
    calibrated: Calibrated | None = None,
    hold_out: bool = False,
    splits: dict | None = None,
) -> Quantized:
    """`splits`: the convolutions split per Concat branch before (concat_split.py), for the report."""
    settings = spec.precision.calibration
    mode, method, percentile = spec.precision.mode, settings.method, settings.percentile
    plan = plan_quantization(model, spec.precision.keep_fp32, exclude, building_backend(spec))
    depthwise = depthwise_inputs(model, plan.layers, plan.residuals, plan.activations) if settings.equalize else []
    migrating = (
        migration_inputs(model, plan.layers, plan.residuals, plan.activations, depthwise) if settings.migrate else {}
    )
    unclipped = near_outputs(model, plan.layers, settings.unclipped_near_outputs)
    if calibrated is None:  # auto_fallback's later steps can need the ranges of new residual inputs
        extra = fallback_residuals(model, plan) if spec.precision.auto_fallback else []
        corrected = plan.layers if mode == "int8" and settings.bias_correction else []
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
            migrating,
            plan.layers,
        )
    ranges = {t: calibrated.ranges[t] for t in plan.activations}
    channel_ranges = {t: calibrated.channel_ranges[t] for t in depthwise if t in calibrated.channel_ranges}
    strengths = {t: s for t, s in calibrated.strengths.items() if t in plan.activations}
    migrated = {t: calibrated.channel_ranges[t] for t in strengths}
    shifts = {layer: calibrated.bias_shifts[layer] for layer in plan.layers if layer in calibrated.bias_shifts}
    fallback = spec.precision.fallback
    floor = FP16_SMALLEST if fallback == "fp16" else 0.0
    with_qdq = insert_qdq(model, plan, ranges, mode, floor, {**channel_ranges, **migrated}, shifts, strengths)
    quantized, measured, kept = _with_fallback(with_qdq, fallback, spec, calibrated.largest or {})
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
        "split_concat_readers": splits or {},
        "equalized_inputs": equalized_section(model, plan.layers, ranges, channel_ranges),
        "migrated_inputs": migrated_section(model, plan.layers, strengths, ranges, migrated),
        "bias_corrected": {
            layer: round(float(np.abs(shift).max()), 6) for layer, shift in shifts.items()
        },  # largest shift
        "ranges": {t: round(v, 6) for t, v in sorted(ranges.items(), key=lambda item: -item[1])},
    }
    return Quantized(quantized, section, measured, kept, calibrated.cache_file, list(calibrated.warnings), calibrated)


def quantize_until_accurate(
    model, spec, inputs, profile, model_sha256, check, progress, samples: AccuracySamples
) -> tuple[Quantized, dict]:
    """Quantize; when the accuracy gate fails and auto_fallback is on, return layers to the
    fallback precision until it holds (fallback.py). Layers are ranked on calibration samples,
    never on the accuracy `samples`. A gate that still fails
    raises AccuracyGateError carrying the report sections of the last graph, ranking included."""
    # Raised once, before planning: every step below then works on the same converted graph.
    model = with_opset(model, 19 if spec.precision.mode == "fp8" or spec.precision.fallback != "fp32" else 13)
    splits: dict = {}
    if spec.precision.calibration.split_concat:  # before planning: calibration sees the split graph
        stream = calibration_stream(spec, inputs, profile, samples.held_out)
        first, _ = first_samples(stream.read(SPLIT_SAMPLES), SPLIT_SAMPLES)
        model, splits = split_concat_readers(model, first, spec.precision.keep_fp32)
    result = quantize(model, spec, inputs, profile, model_sha256, progress, hold_out=samples.held_out, splits=splits)
    calibrated = result.calibrated

    def ranked() -> Ranking:
        stream = calibration_stream(spec, inputs, profile, samples.held_out)
        batches, count = first_samples(stream.read(RANKING_SAMPLES), RANKING_SAMPLES)
        ranked_on = {
            "source": f"the first {count} calibration samples{' not held out' if samples.held_out else ''}: {stream.description}",
            "kind": stream.kind,
            "samples": count,
        }
        return rank_layers(
            model,
            plan_quantization(model, spec.precision.keep_fp32, backend=building_backend(spec)).layers,
            calibrated.ranges,
            spec.precision.mode,
            batches,
            ranked_on,
            profile,
        )

    try:
        accuracy = check(result)
    except AccuracyGateError as failure:
        ranking = ranked()
        if not spec.precision.auto_fallback:
            result.section["sensitivity"] = ranking.section()
            raise _failed(failure, result, spec, f"most sensitive quantized layers: {ranking.most_harmful()}") from None
        found = fall_back_until_accurate(
            lambda back: quantize(
                model,
                spec,
                inputs,
                profile,
                model_sha256,
                progress,
                exclude=back,
                calibrated=calibrated,
                splits=splits,
            ),
            check,
            ranking,
            result,
            failure,
        )
        result = found.result
        result.section["auto_fallback"] = found.section(ranking)
        if found.failure is not None:
            raise _failed(
                AccuracyGateError(
                    f"{found.failure.message}; auto_fallback returned {len(found.kept_back)} layer(s) to "
                    f"{spec.precision.fallback} and the gate still fails",
                    found.failure.details,
                    found.failure.sections,
                ),
                result,
                spec,
            ) from None
        return result, found.accuracy
    if clearly_off(accuracy["outputs"]):  # no gate failed, yet the build will warn: say which layers hurt most
        result.section["sensitivity"] = ranked().section()
    return result, accuracy


def precision_section(mode: str, result: Quantized) -> dict:
    section = {
        "mode": mode,
        "quantized_layers": len(result.section["quantized_layers"]),
        "fallback": result.section["fallback"],
        "kept_fp32": result.kept_fp32,
    }
    calibrated = result.calibrated
    if calibrated is not None and calibrated.largest is not None:
        section["activation_ranges"] = activation_ranges(calibrated.samples, calibrated.kind, calibrated.description)
    return section


def _failed(failure: AccuracyGateError, result: Quantized, spec: Spec, *details: str) -> AccuracyGateError:
    """`failure` with the report sections of the graph that failed (its accuracy section is there already)."""
    failure.details += details
    failure.sections.update(calibration=result.section, precision=precision_section(spec.precision.mode, result))
    return failure


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


def building_backend(spec: Spec) -> str:
    """The TensorRT package the build will use, from package metadata (nothing is imported)."""
    return backend_identity(spec.target.backend).split(" ")[0]


def _input_settings(spec: Spec) -> dict:
    """Pinned values and value ranges, as the calibration cache key holds them."""
    return {
        name: {"value": s.value, "range": s.value_range}
        for name, s in sorted(spec.input_settings.items())
        if s.value is not None or s.value_range
    }


def _random_batches(inputs, profile, spec, batch, samples):
    shapes = {name: (batch, *r.opt[1:]) for name, r in profile.items()}
    for index in range(-(-samples // batch)):
        yield random_feeds(inputs, shapes, spec.value_ranges, seed=index)

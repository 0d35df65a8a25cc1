"""INT8 / FP8 post-training quantization for `trtc build`: plan the Q/DQ placement, calibrate the
activation ranges (calibration_run.py: or reuse a matching cache), insert Q/DQ, put the rest in the fallback
precision, and measure accuracy on held-out samples. The FP16 fallback gets autocast's FP16 rules
(overflowing layers stay FP32, ranges from a reference run) and is measured on a graph that rounds
through FP16, as `precision: fp16` is. With `auto_fallback`, layers return to the fallback
precision until the accuracy gate holds (fallback.py); a failed gate, and a model clearly off FP32
without one, get the same ranking of layers, for the report and the warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from trtc.backend.trt_import import backend_identity
from trtc.errors import AccuracyGateError
from trtc.graph.profiles import ModelInput
from trtc.precision.accuracy import clearly_off
from trtc.precision.accuracy_data import AccuracySamples
from trtc.precision.autocast import autocast
from trtc.precision.calibration_run import Calibrated, calibrate, calibration_stream
from trtc.precision.concat_split import SAMPLES as SPLIT_SAMPLES
from trtc.precision.concat_split import split_concat_readers
from trtc.precision.equalize import depthwise_inputs, equalized_section
from trtc.precision.fallback import RANKING_SAMPLES, Ranking, fall_back_until_accurate, first_samples, rank_layers
from trtc.precision.magnitudes import activation_ranges
from trtc.precision.migrate import migrated_section, migration_inputs
from trtc.precision.opset import with_opset
from trtc.precision.qdq import FP16_SMALLEST, fallback_residuals, insert_qdq, near_outputs, plan_quantization
from trtc.spec.model import ShapeRange, Spec


@dataclass
class Quantized:
    model: onnx.ModelProto
    section: dict
    measured: onnx.ModelProto | None = None  # what onnxruntime runs for accuracy (rounding emulated in FP32)
    kept_fp32: dict[str, str] = field(default_factory=dict)  # fallback nodes the FP16 rules keep in FP32, and why
    cache_file: tuple[Path, str] | None = None  # written with the build's outputs
    warnings: list[str] = field(default_factory=list)
    calibrated: "Calibrated | None" = None


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
        "seconds": round(calibrated.seconds, 3),  # ranges, migration strengths, bias shifts (or the cache read)
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

"""The precision step of `trtc build`: convert the FP32 graph to the spec's precision, measure
what that cost against the FP32 graph in onnxruntime, and stop the build (exit 3) when an
accuracy gate fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from trtc.errors import AccuracyGateError, BuildError
from trtc.graph.profiles import ModelInput
from trtc.graph.random_inputs import random_feeds
from trtc.graph.reference import Reference, ReferenceUnavailable
from trtc.graph.shape_inputs import feed_values
from trtc.precision.accuracy import ReferenceRuns, as_dicts, clearly_off, enforce
from trtc.precision.accuracy_data import AccuracySamples, accuracy_samples
from trtc.precision.autocast import autocast
from trtc.precision.magnitudes import activation_ranges, reference_magnitudes
from trtc.precision.opset import with_opset
from trtc.precision.quantize import precision_section, quantize_until_accurate
from trtc.spec.model import ShapeRange, Spec
from trtc.spec.preflight import MIN_ACCURACY_SAMPLES


@dataclass
class PrecisionOutcome:
    model: onnx.ModelProto
    sections: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files: list[tuple[Path, str]] = field(default_factory=list)  # written with the build's outputs


def apply_precision(
    model: onnx.ModelProto,
    spec: Spec,
    inputs: list[ModelInput],
    profile: dict[str, ShapeRange],
    model_sha256: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> PrecisionOutcome:
    mode = spec.precision.mode
    if mode == "fp32":
        return PrecisionOutcome(model)
    samples = accuracy_samples(spec, inputs, profile)
    samples.require_enough(spec.accuracy.gates)  # before calibration: a gate on too few samples is a spec error
    outcome = PrecisionOutcome(model)
    fp32 = ReferenceRuns(model, samples.batches)  # once for every graph measured
    if mode in ("int8", "fp8"):  # the FP16 fallback's range rules read calibration's runs (quantize.py)

        def check(result):
            return check_accuracy(fp32, result.measured, spec, samples, emulated=result.measured is not result.model)

        result, accuracy = quantize_until_accurate(model, spec, inputs, profile, model_sha256, check, progress, samples)
        outcome.model = result.model
        outcome.sections.update(
            calibration=result.section, accuracy=accuracy, precision=precision_section(mode, result)
        )
        outcome.warnings += result.warnings
        if result.cache_file:
            outcome.files.append(result.cache_file)
    else:
        magnitudes, ranges = _magnitudes(model, samples, outcome.warnings) if mode == "fp16" else ({}, None)
        if mode == "bf16":  # bfloat16 exists from opset 13 (Cast to it was invalid in opset-12 models)
            model = with_opset(model, 13)
        converted = autocast(model, mode, spec.precision.keep_fp32, spec.precision.keep_io_types, magnitudes)
        outcome.model = converted.model
        outcome.sections["precision"] = converted.section(mode)
        if ranges:
            outcome.sections["precision"]["activation_ranges"] = ranges
        # Accuracy is measured on an FP32 model that rounds the same tensors through FP16/BF16:
        # onnxruntime's CPU kernels lack BF16, and for FP16 its InsertCastTransformer runs ops without
        # an FP16 kernel in FP32 and drops the model's own down-and-up Casts around them, so the real
        # FP16 graph there shows neither activation rounding nor overflow (measured: bit-exact FP32
        # results, 1e5 where FP16 gives Inf). The real graph still has to load and run in onnxruntime.
        measured = autocast(
            model, mode, spec.precision.keep_fp32, spec.precision.keep_io_types, magnitudes, emulate=True
        ).model
        try:
            outcome.sections["accuracy"] = check_accuracy(fp32, measured, spec, samples, emulated=True)
        except AccuracyGateError as failure:
            failure.sections["precision"] = outcome.sections["precision"]
            raise
        _check_runs(converted.model, inputs, profile, spec)
    outcome.warnings += accuracy_warnings(
        spec, samples, outcome.sections["accuracy"], outcome.sections.get("calibration")
    )
    return outcome


def _check_runs(model: onnx.ModelProto, inputs: list[ModelInput], profile: dict[str, ShapeRange], spec: Spec) -> None:
    """The converted graph itself loads and runs in onnxruntime (BF16 excepted: no CPU kernels)."""
    if spec.precision.mode != "fp16":
        return
    try:
        reference = Reference(model)
        kinds = {i.name: i.type for i in reference.session.get_inputs()}
        feeds = random_feeds(
            inputs, {name: r.min for name, r in profile.items()}, spec.value_ranges, fixed=feed_values(profile, "min")
        )
        reference.run({n: v.astype(np.float16) if kinds.get(n) == "tensor(float16)" else v for n, v in feeds.items()})
    except ReferenceUnavailable as error:
        raise BuildError(
            f"fp16: the converted graph does not run in onnxruntime ({error.message}); "
            "keep the node it names in FP32 (precision.keep_fp32)"
        ) from None


def check_accuracy(
    reference: ReferenceRuns, converted: onnx.ModelProto, spec: Spec, samples: AccuracySamples, emulated: bool = False
) -> dict:
    """Measure, report and enforce the spec's accuracy gates (AccuracyGateError: exit 3); with too
    few samples, a section that says "not measured" and why, and no figure."""
    gates = spec.accuracy.gates
    section = {
        "status": "measured",
        "source": samples.source,
        "kind": samples.kind,
        "held_out": samples.held_out,
        "samples": 0,
        "minimum_samples": MIN_ACCURACY_SAMPLES,
        "emulated": emulated,
        "gates": gates,
        "outputs": [],
        "passed": None,
    }
    if samples.shortfall:
        return {**section, "status": "not measured", "reason": samples.reason, "gates": {}}
    results = reference.measure(converted)
    section.update(
        samples=min(r.samples for r in results) if results else 0,
        outputs=as_dicts(results),
        passed=True if gates else None,
    )
    try:
        enforce(results, gates, spec.precision.mode)
    except AccuracyGateError as failure:  # the failed figures go into the report a failed build writes
        failure.sections["accuracy"] = {**section, "passed": False, "failures": failure.details}
        raise
    return section


def accuracy_warnings(spec: Spec, samples: AccuracySamples, accuracy: dict, calibration: dict | None) -> list[str]:
    """Said without any gate set: accuracy that was not measured, and a model clearly off FP32
    with what to change in the spec."""
    mode = spec.precision.mode
    if accuracy["status"] == "not measured":
        return [samples.not_measured(mode)]
    problems = clearly_off(accuracy["outputs"])
    if not problems:
        return []
    text = f"{mode}: the converted model is clearly off FP32 on {accuracy['samples']} {accuracy['kind']} samples ({'; '.join(problems)})"
    if accuracy["kind"] == "random":  # random values can take a model where real data never goes
        text += (
            "; random inputs may be far from your data: measure on accuracy.data (integer inputs are drawn "
            "from 0..1 unless inputs: {name: {range: [lo, hi]}}) before changing precision"
        )
    ranking = ((calibration or {}).get("auto_fallback") or (calibration or {}).get("sensitivity") or {}).get(
        "ranking", []
    )[:3]
    if ranking:
        text += "; most sensitive quantized layers: " + ", ".join(
            f"{r['layer']} (relative L2 {r['rel_l2_error']:.3f} alone)" for r in ranking
        )
    if mode not in ("int8", "fp8"):
        return [text + "; keep the layers that cause it in FP32 (precision.keep_fp32: [names or op types])"]
    fixes = ["precision.fallback: fp32"] if spec.precision.fallback != "fp32" else []
    fixes += [
        f"precision.keep_fp32: [{', '.join(r['layer'] for r in ranking) or 'layer names'}]",
        "precision.auto_fallback: true with a gate such as accuracy.min_cosine: 0.99",
    ]
    return [text + "; try " + ", or ".join(fixes)]


def _magnitudes(
    model: onnx.ModelProto, samples: AccuracySamples, warnings: list[str]
) -> tuple[dict[str, float], dict | None]:
    """Max |x| of every float tensor over the accuracy samples (what FP16 is measured on: the
    user's data when given), and the report's record of them."""
    try:
        found = reference_magnitudes(model, samples.batches())
    except ReferenceUnavailable as error:
        warnings.append(
            f"fp16: activation ranges not checked ({error.message}); only op and weight rules decide what stays FP32"
        )
        return {}, None
    return found.largest, activation_ranges(found.samples, samples.kind, samples.source)

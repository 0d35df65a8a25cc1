"""The precision step of `trtc build`: convert the FP32 graph to the spec's precision, measure
what that cost against the FP32 graph in onnxruntime, and stop the build (exit 3) when an
accuracy gate fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx

from trtc.errors import BuildError
from trtc.graph.profiles import ModelInput
from trtc.graph.random_inputs import random_feeds
from trtc.graph.shape_inputs import feed_values
from trtc.graph.reference import Reference, ReferenceUnavailable, with_outputs
from trtc.precision.accuracy import as_dicts, enforce, measure_accuracy
from trtc.precision.opset import with_opset
from trtc.precision.autocast import autocast
from trtc.precision.data import SampleSource
from trtc.precision.quantize import quantize_until_accurate
from trtc.spec.model import ShapeRange, Spec


@dataclass
class PrecisionOutcome:
    model: onnx.ModelProto
    sections: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files: list[tuple[Path, str]] = field(default_factory=list)  # written with the build's outputs


def apply_precision(model: onnx.ModelProto, spec: Spec, inputs: list[ModelInput], profile: dict[str, ShapeRange],
                    model_sha256: str = "", progress: Callable[[int, int], None] | None = None) -> PrecisionOutcome:
    mode = spec.precision.mode
    if mode == "fp32":
        return PrecisionOutcome(model)
    outcome = PrecisionOutcome(model)
    if mode in ("int8", "fp8"):
        def check(result):
            return check_accuracy(model, result.measured, spec, inputs, profile, emulated=result.measured is not result.model,
                                  skip=result.held_out_from)

        def ranking_batch(skip):
            description, batches = accuracy_batches(spec, inputs, profile, 1, skip)
            return description, next(iter(batches))

        result, accuracy = quantize_until_accurate(model, spec, inputs, profile, model_sha256, check, progress, ranking_batch)
        outcome.model = result.model
        outcome.sections.update(calibration=result.section, accuracy=accuracy,
                                precision={"mode": mode, "quantized_layers": len(result.section["quantized_layers"]),
                                           "fallback": result.section["fallback"]})
        outcome.warnings += result.warnings
        if result.cache_file:
            outcome.files.append(result.cache_file)
        return outcome
    magnitudes = _magnitudes(model, inputs, profile, spec, outcome.warnings) if mode == "fp16" else {}
    if mode == "bf16":  # bfloat16 exists from opset 13 (Cast to it was invalid in opset-12 models)
        model = with_opset(model, 13)
    converted = autocast(model, mode, spec.precision.keep_fp32, spec.precision.keep_io_types, magnitudes)
    outcome.model = converted.model
    outcome.sections["precision"] = converted.section(mode)
    # Accuracy is measured on an FP32 model that rounds the same tensors through FP16/BF16:
    # onnxruntime's CPU kernels lack BF16, and for FP16 its InsertCastTransformer runs ops without
    # an FP16 kernel in FP32 and drops the model's own down-and-up Casts around them, so the real
    # FP16 graph there shows neither activation rounding nor overflow (measured: bit-exact FP32
    # results, 1e5 where FP16 gives Inf). The real graph still has to load and run in onnxruntime.
    measured = autocast(model, mode, spec.precision.keep_fp32, spec.precision.keep_io_types, magnitudes, emulate=True).model
    outcome.sections["accuracy"] = check_accuracy(model, measured, spec, inputs, profile, emulated=True)
    _check_runs(converted.model, inputs, profile, spec)
    nonfinite = [o["name"] for o in outcome.sections["accuracy"]["outputs"] if o["nonfinite"]]
    if nonfinite:  # with a gate set this already failed; without one it must not pass unnoticed
        outcome.warnings.append(f"{mode}: output(s) {', '.join(nonfinite)} overflow to Inf/NaN where FP32 is finite; "
                                "keep the layers that produce them in FP32 (precision.keep_fp32)")
    return outcome


def _check_runs(model: onnx.ModelProto, inputs: list[ModelInput], profile: dict[str, ShapeRange], spec: Spec) -> None:
    """The converted graph itself loads and runs in onnxruntime (BF16 excepted: no CPU kernels)."""
    if spec.precision.mode != "fp16":
        return
    ranges = {name: s.value_range for name, s in spec.input_settings.items() if s.value_range}
    try:
        reference = Reference(model)
        kinds = {i.name: i.type for i in reference.session.get_inputs()}
        feeds = random_feeds(inputs, {name: r.min for name, r in profile.items()}, ranges, fixed=feed_values(profile, "min"))
        reference.run({n: v.astype(np.float16) if kinds.get(n) == "tensor(float16)" else v for n, v in feeds.items()})
    except ReferenceUnavailable as error:
        raise BuildError(f"fp16: the converted graph does not run in onnxruntime ({error.message}); "
                         "keep the node it names in FP32 (precision.keep_fp32)") from None


def check_accuracy(reference: onnx.ModelProto, converted: onnx.ModelProto, spec: Spec, inputs: list[ModelInput],
                   profile: dict[str, ShapeRange], emulated: bool = False, skip: int = 0) -> dict:
    """Measure, report and enforce the spec's accuracy gates (AccuracyGateError: exit 3)."""
    samples = spec.accuracy.get("samples", 64)
    source, batches = accuracy_batches(spec, inputs, profile, samples, skip)
    results = measure_accuracy(reference, converted, batches)
    gates = {k: v for k, v in spec.accuracy.items() if k in ("min_cosine", "max_rel_l2", "min_top1_agreement")}
    section = {"source": source, "samples": results[0].samples if results else 0, "emulated": emulated,
               "gates": gates, "outputs": as_dicts(results)}
    enforce(results, gates, spec.precision.mode)
    section["passed"] = True if gates else None
    return section


def accuracy_batches(spec: Spec, inputs: list[ModelInput], profile: dict[str, ShapeRange], samples: int, skip: int) -> tuple[str, Iterator]:
    base = spec.source.parent if spec.source else Path.cwd()
    batch = max((r.opt[0] for r in profile.values() if r.opt), default=1)
    if "data" in spec.accuracy:
        data = SampleSource(spec.accuracy["data"], "accuracy.data", inputs, base, spec.precision.calibration.get("preprocess"))
        return f"accuracy.data: {data.description}", data.batches(batch, samples)
    calibration = spec.precision.calibration
    if "data" in calibration and skip:
        data = SampleSource(calibration["data"], "precision.calibration.data", inputs, base, calibration.get("preprocess"))
        return f"calibration data held out from calibration: {data.description}", data.batches(batch, samples, skip=skip)
    shapes = {name: r.opt for name, r in profile.items()}
    ranges = {name: s.value_range for name, s in spec.input_settings.items() if s.value_range}
    count = max(1, -(-samples // batch))
    return (f"random inputs at the opt shape ({count} batch(es) of {batch}); give accuracy.data for real data",
            (random_feeds(inputs, shapes, ranges, seed=1000 + i, fixed=feed_values(profile, "opt")) for i in range(count)))


def _magnitudes(model: onnx.ModelProto, inputs: list[ModelInput], profile: dict[str, ShapeRange], spec: Spec, warnings: list[str]) -> dict[str, float]:
    """Max |x| of every float tensor in one FP32 reference run at the profile's min shape."""
    names = [out for node in model.graph.node for out in node.output if out]
    ranges = {name: s.value_range for name, s in spec.input_settings.items() if s.value_range}
    feeds = random_feeds(inputs, {name: r.min for name, r in profile.items()}, ranges, fixed=feed_values(profile, "min"))
    try:
        values = Reference(with_outputs(model, names)).run(feeds)
    except ReferenceUnavailable as error:
        warnings.append(f"fp16: activation ranges not checked ({error.message}); only op and weight rules decide what stays FP32")
        return {}
    return {name: float(np.max(np.abs(v))) for name, v in values.items() if v.dtype.kind == "f" and v.size}

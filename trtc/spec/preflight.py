"""What is wrong with a loaded spec that the schema cannot say and the model does not decide:
rules across fields and the files the spec names. `trtc build` and `trtc check` run it right
after loading, so these errors come before the model is read (seconds to minutes for a large
one) rather than after it, or after the graph passes and calibration.

Only what the spec alone decides is checked here; what needs the model (its inputs and outputs,
whether the samples fit them, enough held-out samples) or TensorRT (the compute capabilities it
targets, checked right after it is imported) comes later. Kept free of numpy, onnx and
TensorRT: an up-to-date build runs it too.
"""

from __future__ import annotations

from pathlib import Path

from trtc.errors import SpecError
from trtc.precision.generator_files import generator_target
from trtc.precision.suffixes import sample_folder
from trtc.spec.model import AccuracySpec, Spec

MIN_ACCURACY_SAMPLES = 8  # fewer say too little about a model: gates refuse them, reports say "not measured"
RAISE_SAMPLES = f"raise accuracy.samples to {MIN_ACCURACY_SAMPLES} or more"


def preflight(spec: Spec) -> None:
    """Raise the first SpecError of `spec` that needs neither its model nor TensorRT."""
    mode = spec.precision.mode
    if mode == "fp32":  # calibration and accuracy settings are not used
        return
    gates = spec.accuracy.gates
    if gates and asked_too_few(spec.accuracy):
        raise too_few_for_gates(gates, asked_too_few(spec.accuracy), RAISE_SAMPLES)
    sources = [("accuracy.data", spec.accuracy.data)]
    if mode in ("int8", "fp8"):
        sources.insert(0, ("precision.calibration.data", calibration_data(spec)))
    base = spec.source.parent if spec.source else Path.cwd()
    for key, where in sources:
        if where is None or where == "random":
            continue
        if where.startswith("python:"):
            generator_target(where.removeprefix("python:"), key)  # imported (running its code) only to read samples
        else:
            sample_folder(where, key, base)


def calibration_data(spec: Spec) -> str:
    """Where the spec's calibration samples come from; a spec error when INT8/FP8 has none."""
    if spec.precision.calibration.data is None:
        raise SpecError(
            f"precision.calibration.data: {spec.precision.mode} needs calibration data: a folder of .npy/.npz/images, "
            "python:module:function, or 'random' for a smoke test"
        )
    return spec.precision.calibration.data


def asked_too_few(accuracy: AccuracySpec) -> str | None:
    """Why `accuracy.samples` alone rules out a figure, or None."""
    return f"accuracy.samples is {accuracy.samples}" if accuracy.samples < MIN_ACCURACY_SAMPLES else None


def too_few_for_gates(gates: dict, shortfall: str, fix: str) -> SpecError:
    """A gate on too few samples would pass or fail on noise: a spec error, exit 2."""
    return SpecError(
        f"accuracy.{next(iter(gates))}: a gate needs at least {MIN_ACCURACY_SAMPLES} samples to measure; {shortfall}: {fix}"
    )

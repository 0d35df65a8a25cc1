"""`trtc check`: everything about a spec that can be known without building, in the order a build
meets it: the spec's pass names and GPU, the backend, the model with its outputs, profiles and
pinned inputs (the build's own steps), the calibration and accuracy data, then TensorRT's ONNX
parser over the graph the build would hand it, and the builder configuration (targets,
optimization profiles) applied to the parsed network.

A problem with the spec or its files raises (exit 2), as `trtc build` would; the parser's verdict
comes back in `CheckResult` for the CLI to render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trtc.backend.builder import BuildSettings, ParserProblem, compute_capabilities
from trtc.backend.support import check_support
from trtc.backend.trt_import import import_tensorrt
from trtc.commands.observers import Recording
from trtc.commands.pinned_model import load_pinned_model
from trtc.commands.prepare import model_source
from trtc.commands.remedies import remedies
from trtc.errors import SpecError
from trtc.graph.profiles import model_inputs
from trtc.incremental.clashes import build_inputs, build_outputs, refuse_clashes
from trtc.passes import select_passes
from trtc.precision.accuracy_data import accuracy_samples
from trtc.precision.data import SampleSource
from trtc.report.kernel_cost import choose_gpu
from trtc.spec.model import Spec
from trtc.spec.preflight import calibration_data


@dataclass
class CheckResult:
    spec: Spec
    backend: str  # "tensorrt-rtx 1.7.1"
    onnx_nodes: int  # in the graph TensorRT parsed (after output selection and pinning)
    layers: int  # network layers TensorRT's parser made of them
    inputs: dict[str, tuple[int, ...]]  # engine inputs as TensorRT sees them, -1 for dynamic dims
    outputs: list[str]
    profiles: list  # complete optimization profiles, as the build would use them
    problems: list[ParserProblem]  # nodes the parser refused
    hints: list[str]  # known remedies for the refusals
    checked: list[str]  # one line per thing that was verified, for the summary
    warnings: list[str] = field(default_factory=list)

    @property
    def supported(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "spec": str(self.spec.source),
            "model": str(self.spec.model),
            "backend": self.backend,
            "supported": self.supported,
            "onnx_nodes": self.onnx_nodes,
            "layers": self.layers,
            "inputs": {n: list(d) for n, d in self.inputs.items()},
            "outputs": self.outputs,
            "profiles": [{n: r.as_dict() for n, r in p.items()} for p in self.profiles],
            "unsupported": [{"node": p.node, "op_type": p.op_type, "message": p.message} for p in self.problems],
            "hints": self.hints,
            "checked": self.checked,
            "warnings": self.warnings,
        }


def check_spec(spec: Spec) -> CheckResult:
    checked: list[str] = []
    select_passes(spec.fusion)
    choose_gpu(spec.target.gpu, spec.target.compute_capabilities)
    trt = import_tensorrt(spec.target.backend)
    compute_capabilities(trt, spec.target.compute_capabilities)
    observer = Recording()
    refuse_clashes(build_outputs(spec), build_inputs(spec))
    pinned = load_pinned_model(spec, observer)
    model, profiles = pinned.model, pinned.profiles
    refuse_clashes(build_outputs(spec), build_inputs(spec, pinned.loaded.files))
    checked.append(
        f"model {spec.model.name}: {len(model.graph.node)} nodes"
        + (
            f" ({len(pinned.sections['graph']['pruned_nodes'])} pruned by the outputs)"
            if pinned.sections["graph"]["pruned_nodes"]
            else ""
        )
    )
    if "pinning" in pinned.sections:
        pinning = pinned.sections["pinning"]
        checked.append(
            f"pinned inputs: {', '.join(p['input'] for p in pinning['pinned_inputs']) or 'none'}; "
            f"{len(pinning['resolved_control_flow'])} If/Loop node(s) resolved"
        )
    checked += _check_data(spec, model, profiles[0])

    settings = BuildSettings.for_spec(spec, profiles)
    support = check_support(trt, model_source(model), settings)
    if support.profile_errors:
        raise SpecError(
            f"optimization profile refused by {trt.name}: {support.profile_errors[0]}; fix the shape ranges under inputs/profiles"
        )
    if not support.problems:
        for index, profile in enumerate(profiles):
            ranges = "; ".join(
                f"{name} {_dims(r.min)} .. {_dims(r.opt)} .. {_dims(r.max)}"
                for name, r in profile.items()
                if r.min != r.max
            )
            checked.append(
                f"optimization profile {index}: accepted"
                + (f" (min .. opt .. max: {ranges})" if ranges else " (static shapes)")
            )
        if spec.target.compute_capabilities:
            checked.append(f"targets: compute capability {', '.join(spec.target.compute_capabilities)}")
    hints = remedies(model) if support.problems else []
    return CheckResult(
        spec=spec,
        backend=f"{trt.name} {trt.version}",
        onnx_nodes=len(model.graph.node),
        layers=support.layers,
        inputs=support.inputs,
        outputs=support.outputs,
        profiles=profiles,
        problems=support.problems,
        hints=hints,
        checked=checked,
        warnings=observer.warnings,
    )


def _check_data(spec: Spec, model, profile) -> list[str]:
    """Calibration and accuracy data exist and their first sample fits the model's inputs (one
    file read; a python: generator is imported but not run); with an accuracy gate, there are
    enough samples to measure it (up to 32 files read)."""
    inputs = model_inputs(model)
    base = spec.source.parent if spec.source else Path.cwd()
    preprocess = spec.precision.calibration.preprocess
    wanted = []
    if spec.precision.mode in ("int8", "fp8"):
        data = calibration_data(spec)
        if data != "random":
            wanted.append(("precision.calibration.data", data))
    if spec.accuracy.data is not None:
        wanted.append(("accuracy.data", spec.accuracy.data))
    lines = []
    for key, where in wanted:
        source = SampleSource(where, key, inputs, base, preprocess)
        if source.files:
            next(source.batches(1, 1), None)
        lines.append(f"{key}: {source.description}")
    gates = spec.accuracy.gates
    if gates and spec.precision.mode != "fp32" and not any(where.startswith("python:") for _, where in wanted):
        accuracy_samples(spec, inputs, profile).require_enough(gates)
    return lines


def _dims(shape) -> str:
    return "x".join(map(str, shape))

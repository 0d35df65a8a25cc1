"""`trtc build` as one readable sequence of steps: spec -> graph -> TensorRT -> plan + report.

The CLI passes an observer for progress; everything else it needs comes back in `BuildOutcome`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import onnx

from trtc import __version__, interrupts
from trtc.backend.builder import BuildObserver, BuildResult, BuildSettings, ModelSource, build_plan
from trtc.backend.trt_import import import_tensorrt
from trtc.commands.diagnose import explain, localize
from trtc.commands.remedies import remedies
from trtc.errors import BuildError, TrtcError
from trtc.graph.cost import NodeCost, node_costs, tensor_elements
from trtc.graph.declared import compare, declared_shapes, observed_outputs, shapes_of
from trtc.graph.io import (
    LoadedModel,
    drop_initializer_inputs,
    load_model,
    name_unnamed_nodes,
    normalize_default_domain,
    select_outputs,
)
from trtc.graph.profiles import model_inputs, resolve_profiles
from trtc.graph.random_inputs import random_feeds
from trtc.graph.shape_inputs import attach_shape_values, feed_values
from trtc.graph.shapes import tensor_types
from trtc.graph.shared_dims import separate_shared_dims
from trtc.incremental import depfile
from trtc.incremental.clashes import build_inputs, build_outputs, refuse_clashes
from trtc.incremental.fingerprint import Fingerprint, fingerprint
from trtc.incremental.stamps import portable_path, stamp, stamps
from trtc.outputs import StagedOutputs
from trtc.passes import attach_costs, node_origins, removed_nodes, run_passes, select_passes
from trtc.passes.loops import onnxruntime_agreement
from trtc.passes.pin import pin_inputs
from trtc.passes.verify_step import verify_step
from trtc.precision.keep import resolve_keep_fp32
from trtc.precision.step import apply_precision
from trtc.report import REPORT_SCHEMA
from trtc.report.fusion import fusion_map
from trtc.report.html import render_html
from trtc.report.kernel_cost import choose_gpu, cost_section, dynamic_value
from trtc.report.markdown import render_markdown
from trtc.report.passes import passes_section
from trtc.spec.model import Spec


class PipelineObserver(BuildObserver, Protocol):
    def stage(self, name: str) -> None: ...
    def warning(self, text: str) -> None: ...
    def progress(self, label: str, done: int, total: int) -> None: ...


@dataclass
class BuildOutcome:
    report: dict
    written: list[Path]
    fingerprint: Fingerprint


@dataclass
class PreparedGraph:
    """What the graph steps hand to TensorRT and to the report. The ModelProto itself does not
    outlive `prepare_graph`, so its memory is free before the (memory-hungry) build."""

    source: ModelSource
    onnx_bytes: bytes | None  # what TensorRT parses, when held in memory
    nodes: dict[str, str]  # the user's node name -> op type, in graph order
    origins: dict[str, tuple[str, ...]]  # node a pass produced -> the user's nodes it stands for
    removed: dict[str, str]  # the user's nodes the passes removed -> the pass that did
    costs: dict[str, NodeCost]  # the user's nodes at the first profile's opt shapes
    graph_costs: dict[
        str, NodeCost
    ]  # the nodes after the passes, before precision: the model's FLOPs in every precision
    built_costs: dict[str, NodeCost]  # the nodes of the graph TensorRT parses, at the same shapes
    opt_elements: dict[str, int]  # ONNX tensor -> elements at those shapes (sizes TensorRT reports as -1)
    added: dict[str, str]  # nodes trtc added that stand for no user node (casts, Q/DQ) -> op type
    profiles: list
    model_sha256: str
    sections: dict[str, object]
    warnings: list[str]
    extra_files: list[tuple[Path, str]]  # e.g. a calibration cache, written with the outputs
    fingerprint: Fingerprint  # of everything that decided this build, for `trtc build`'s up-to-date check
    file_stamps: dict[
        str, list[int]
    ]  # of the model files as hashed: the up-to-date check trusts the hash while they hold


def build(
    spec: Spec, observer: PipelineObserver, diagnose: bool = True, depfile_path: Path | None = None
) -> BuildOutcome:
    """`depfile_path`: also write a Make rule, with the other outputs (refused before TensorRT builds,
    and checked against the inputs with the other outputs)."""
    gpu = choose_gpu(spec.target.gpu, spec.target.compute_capabilities)
    trt = import_tensorrt(spec.target.backend)
    timing_cache = _read_timing_cache(spec)
    with (
        tempfile.TemporaryDirectory(prefix="trtc-") as scratch,
        interrupts.cleanup_on_forced_exit(functools.partial(shutil.rmtree, scratch, ignore_errors=True)),
    ):
        graph = prepare_graph(spec, observer, Path(scratch), depfile_path)
        rule = (
            depfile.render(spec.output.all_files(), [spec.source, *graph.fingerprint.inputs]) if depfile_path else None
        )
        settings = BuildSettings.for_spec(spec, graph.profiles, timing_cache)
        _return_freed_memory()
        observer.stage(f"building with {trt.name} {trt.version}")
        try:
            result = build_plan(trt, graph.source, settings, observer)
        except TrtcError as error:
            if diagnose and type(error) is BuildError:  # the parser names its nodes; the builder often does not
                error = _diagnosed(error, trt, graph, settings, observer)
            _keep_failure_log(spec, error)  # after the diagnosis: an interrupted one leaves no log behind
            error.details.extend(_remedies(graph))
            raise error from None

    for warning in result.warnings:
        observer.warning(warning)
    observer.stage("writing outputs")
    said = [*graph.warnings, *result.warnings]
    report = _report(spec, graph, trt, result, said, gpu)
    for warning in report["warnings"][len(said) :]:  # found while writing the report (output shapes)
        observer.warning(warning)
    with StagedOutputs() as staged:
        plan_file = staged.write(spec.output.plan, result.plan)
        stamped = {**graph.file_stamps, str(spec.output.plan): stamp(plan_file)}
        report["build"]["file_stamps"] = {portable_path(Path(path), spec): value for path, value in stamped.items()}
        staged.write(spec.output.report, json.dumps(report, indent=2) + "\n")
        staged.write(spec.output.markdown, render_markdown(report))
        staged.write(spec.output.html, render_html(report))
        staged.write(spec.output.log, _log_text(result.log))
        if spec.output.onnx:
            staged.write(
                spec.output.onnx, graph.onnx_bytes if graph.onnx_bytes is not None else graph.source.path.read_bytes()
            )
        for path, text in graph.extra_files:
            staged.write(path, text)
        if spec.target.timing_cache and result.timing_cache:
            staged.write(spec.target.timing_cache, result.timing_cache)
        if rule is not None:
            staged.write(depfile_path, depfile.encoded(rule))
        staged.commit()
    return BuildOutcome(report=report, written=spec.output.all_files(), fingerprint=graph.fingerprint)


def prepare_graph(
    spec: Spec, observer: PipelineObserver, scratch: Path, depfile_path: Path | None = None
) -> PreparedGraph:
    """Load the model and run the graph steps in order; each rewrites the model in place and may
    add a report section."""
    model_stamp = stamps([spec.model])  # before reading: a change while it is read shows next time
    front = load_pinned_model(spec, observer)
    loaded, model, profiles, sections, warnings = (
        front.loaded,
        front.model,
        front.profiles,
        front.sections,
        front.warnings,
    )
    refuse_clashes(build_outputs(spec, depfile_path), build_inputs(spec, loaded.files))  # external data is known now
    file_stamps = {**stamps(loaded.files[1:]), **model_stamp}
    build_fingerprint = fingerprint(spec, loaded.files, loaded.sha256)
    original_nodes = {node.name: node.op_type for node in model.graph.node}
    value_ranges = {name: setting.value_range for name, setting in spec.input_settings.items() if setting.value_range}
    min_feeds = random_feeds(
        model_inputs(model),
        {name: r.min for name, r in profiles[0].items()},
        value_ranges,
        fixed=feed_values(profiles[0], "min"),
    )
    min_outputs, unobserved = observed_outputs(
        loaded.files[0] if front.computes_as_file and len(loaded.files) == 1 else model, min_feeds
    )
    sections["output_shapes"] = {
        "declared": declared_shapes(model),
        "onnxruntime": shapes_of(min_outputs),
        "not_run": unobserved,
    }

    opt_shapes = {name: shape_range.opt for name, shape_range in profiles[0].items()}
    types = tensor_types(model, opt_shapes)
    costs, opt_elements = node_costs(model, types=types), tensor_elements(types)

    observer.stage("running graph passes")
    passes = select_passes(spec.fusion)
    original = _copy_if(model, bool(passes) and spec.fusion.get("verify", "on") != "off")
    runs = run_passes(model, passes)
    if original is not None:
        observer.stage("verifying the graph passes in onnxruntime")
        model, verification, repaired_runs = verify_step(
            original, model, passes, runs, spec, profiles, (min_feeds, min_outputs)
        )
        runs = repaired_runs or runs
        sections["verification"] = verification.section()
        for dropped in verification.dropped:
            message = (
                f"verification: dropped the {dropped['pass']} change on {', '.join(dropped['nodes'])}: "
                f"it changed the outputs ({dropped['problem']})"
            )
            observer.warning(message)
            warnings.append(message)
        if verification.status == "not verified":
            warnings.append(f"graph passes not verified: {verification.reason}")
            observer.warning(warnings[-1])
        del original
    graph_costs = costs
    if any(run.changes for run in runs):
        types = tensor_types(model, opt_shapes)
        graph_costs = node_costs(model, types=types)
        attach_costs(runs, costs, graph_costs)
        opt_elements.update(tensor_elements(types))
    origins, removed = node_origins(runs), removed_nodes(runs)
    sections["passes"] = passes_section(runs)
    if not sections["passes"]["settled"]:
        warnings.append(
            f"graph passes still changed the graph in their last allowed round ({sections['passes']['rounds']}); "
            "the rest is left to TensorRT"
        )
        observer.warning(warnings[-1])

    if spec.precision.mode != "fp32":
        observer.stage(f"converting to {spec.precision.mode} and measuring accuracy")
    keep_fp32, keep_warnings = resolve_keep_fp32(spec.precision.keep_fp32, model, origins, original_nodes)
    for warning in keep_warnings:
        observer.warning(warning)
    warnings += keep_warnings
    precision_spec = replace(spec, precision=replace(spec.precision, keep_fp32=keep_fp32))
    precision = apply_precision(
        model,
        precision_spec,
        model_inputs(model),
        profiles[0],
        loaded.sha256,
        lambda done, total: observer.progress("calibrating", done, total),
    )
    converted = precision.model is not model or spec.precision.mode != "fp32"
    model = precision.model
    if converted:  # `types` are those of the graph TensorRT parses: after passes and precision
        types = tensor_types(model, opt_shapes)
        opt_elements.update(tensor_elements(types))
    built_costs = node_costs(model, types=types)
    sections.update(precision.sections)
    extra_files = precision.files
    for warning in precision.warnings:
        observer.warning(warning)
    warnings += precision.warnings

    source, onnx_bytes = model_source(model, loaded, spec, scratch)
    added = {n.name: n.op_type for n in model.graph.node if n.name not in original_nodes and n.name not in origins}
    return PreparedGraph(
        source=source,
        onnx_bytes=onnx_bytes,
        nodes=original_nodes,
        origins=origins,
        removed=removed,
        costs=costs,
        graph_costs=graph_costs,
        built_costs=built_costs,
        opt_elements=opt_elements,
        added=added,
        profiles=profiles,
        model_sha256=loaded.sha256,
        sections=sections,
        warnings=warnings,
        extra_files=extra_files,
        fingerprint=build_fingerprint,
        file_stamps=file_stamps,
    )


@dataclass
class PinnedModel:
    """The spec's model after the steps that decide what TensorRT's network is: outputs
    selected, profiles complete, inputs pinned. Shared by `trtc build` and `trtc check`."""

    loaded: LoadedModel
    model: onnx.ModelProto
    profiles: list
    sections: dict[str, object]
    warnings: list[str]
    computes_as_file: bool  # computes what the file does: only names changed (onnxruntime may run the file's bytes)


def load_pinned_model(spec: Spec, observer: PipelineObserver) -> PinnedModel:
    observer.stage("loading model")
    loaded = load_model(spec.model)
    model = loaded.proto
    sections: dict[str, object] = {}
    renamed = name_unnamed_nodes(model.graph)
    normalize_default_domain(model)
    drop_initializer_inputs(model)
    pruned = select_outputs(model, spec.outputs) if spec.outputs else []
    sections["graph"] = {"onnx_nodes": len(model.graph.node), "renamed_nodes": renamed, "pruned_nodes": pruned}
    profiles, warnings = resolve_profiles(model_inputs(model), spec)
    for warning in warnings:
        observer.warning(warning)
    attach_shape_values(model, profiles, spec)
    shared = separate_shared_dims(model, profiles)
    if shared:
        sections["graph"]["separated_dims"] = shared
    pinned_values = {name: s.value for name, s in spec.input_settings.items() if s.value is not None}
    static_shapes = {
        name: r.min for name, r in profiles[0].items() if all(p[name].min == p[name].max == r.min for p in profiles)
    }
    value_ranges = {name: setting.value_range for name, setting in spec.input_settings.items() if setting.value_range}
    unroll_check = onnxruntime_agreement(
        random_feeds(
            model_inputs(model),
            {n: r.min for n, r in profiles[0].items()},
            value_ranges,
            fixed=feed_values(profiles[0], "min"),
        )
    )
    shape_ranges = {
        name: (
            tuple(min(p[name].min[axis] for p in profiles) for axis in range(len(r.min))),
            tuple(max(p[name].max[axis] for p in profiles) for axis in range(len(r.max))),
        )
        for name, r in profiles[0].items()
    }
    pinning = pin_inputs(model, pinned_values, static_shapes, unroll_check, shape_ranges)
    if pinned_values or pinning["resolved_control_flow"]:
        sections["pinning"] = pinning
    # Node names and dim names do not change what onnxruntime computes; the file's own bytes then
    # spare serializing the model again (a quarter second per 100 MB).
    computes_as_file = not pruned and not pinned_values and not pinning["resolved_control_flow"]
    return PinnedModel(loaded, model, profiles, sections, warnings, computes_as_file)


def _return_freed_memory() -> None:
    """The graph steps free the model (hundreds of MB) before TensorRT builds, but glibc keeps
    freed heap pages mapped; hand them back so the build's peak memory is TensorRT's own."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        pass


def _copy_if(model: onnx.ModelProto, wanted: bool) -> onnx.ModelProto | None:
    if not wanted:
        return None
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def model_source(
    model: onnx.ModelProto, loaded: LoadedModel, spec: Spec, scratch: Path
) -> tuple[ModelSource, bytes | None]:
    """The user's file itself when no step changed the graph (TensorRT reads it; no copy stays in
    memory during the build); else a serialization; a file with external data when the model is
    too big for one protobuf message."""
    if model is loaded.proto and loaded.unchanged():
        return ModelSource(path=spec.model), None
    try:
        data = model.SerializeToString()
    except ValueError:  # over protobuf's 2 GiB limit
        path = scratch / "model.onnx"
        onnx.save_model(
            model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx.data"
        )
        return ModelSource(path=path), None
    return ModelSource(data=data, base_dir=spec.model.parent), data


def _read_timing_cache(spec: Spec) -> bytes | None:
    path = spec.target.timing_cache
    if path is None:
        return None
    return path.read_bytes() if path.exists() else b""


def _diagnosed(error: BuildError, trt, graph: PreparedGraph, settings: BuildSettings, observer) -> BuildError:
    """Bisect the graph with real sub-builds to the node where TensorRT's failure starts."""
    model = (
        onnx.load_from_string(graph.onnx_bytes) if graph.onnx_bytes is not None else onnx.load(str(graph.source.path))
    )
    observer.stage("diagnosing the failure: bisecting the graph with sub-builds (--no-diagnose skips this)")
    culprit = localize(trt, model, settings, progress=lambda done, total: observer.progress("sub-builds", done, total))
    if culprit is None:
        error.details.append("trtc could not narrow the failure to one node within 24 sub-builds or 120 s")
        return error
    diagnosed = explain(culprit, error.message)
    diagnosed.log = getattr(error, "log", None)
    return diagnosed


def _remedies(graph: PreparedGraph) -> list[str]:
    """Hints for a failed build; never in the way of the error itself."""
    try:
        if graph.onnx_bytes is not None or graph.source.data is not None:
            return remedies(
                onnx.load_from_string(graph.onnx_bytes if graph.onnx_bytes is not None else graph.source.data)
            )
        return remedies(onnx.load(str(graph.source.path), load_external_data=False))
    except Exception:  # noqa: BLE001
        return []


def _keep_failure_log(spec: Spec, error: TrtcError) -> None:
    """A failed build writes nothing beside the outputs; its log goes to the temp folder."""
    log = getattr(error, "log", None)
    if not log:
        return
    handle = tempfile.NamedTemporaryFile("w", prefix=f"trtc-{spec.name}-", suffix=".build.log", delete=False)
    with handle:
        handle.write(_log_text(log))
    error.details.append(f"full builder log: {handle.name}")


def _log_text(log: list[tuple[str, str]]) -> str:
    return "".join(f"[{severity}] {message}\n" for severity, message in log)


def _report(spec: Spec, graph: PreparedGraph, trt, result: BuildResult, warnings: list[str], gpu: dict | None) -> dict:
    fusion = (
        fusion_map(result.engine, graph.nodes, graph.origins, graph.added, graph.removed) if result.engine else None
    )
    cost = (
        cost_section(
            fusion,
            graph.costs,
            gpu,
            dynamic_value(graph.profiles[0]),
            graph.opt_elements,
            graph.built_costs,
            graph.graph_costs,
        )
        if fusion
        else None
    )
    bindings = [
        {
            "name": b.name,
            "mode": b.mode,
            "dtype": b.dtype,
            "dims": list(b.dims),
            "profiles": [{"min": list(p.min), "opt": list(p.opt), "max": list(p.max)} for p in b.profiles],
        }
        for b in (result.engine.bindings if result.engine else ())
    ]
    report = {
        "schema": REPORT_SCHEMA,
        "build": {
            "name": spec.name,
            "trtc": __version__,
            "backend": trt.name,
            "backend_version": trt.version,
            "target": {
                "compute_capabilities": list(spec.target.compute_capabilities),
                "optimization_level": spec.target.optimization_level,
                "workspace": spec.workspace,
            },
            "spec": spec.source.name if spec.source else None,
            "spec_fingerprint": spec.fingerprint,
            "fingerprint": {
                **graph.fingerprint.as_dict(),
                "model_files": [portable_path(p, spec) for p in graph.fingerprint.model_files],
            },
            "model": portable_path(spec.model, spec),
            "model_sha256": graph.model_sha256,
            "plan": portable_path(spec.output.plan, spec),
            "plan_sha256": hashlib.sha256(result.plan).hexdigest(),
            "plan_bytes": len(result.plan),
            "build_seconds": round(result.seconds, 3),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "precision": {"mode": spec.precision.mode},  # replaced by the precision step's section
        "profiles": [{name: r.as_dict() for name, r in profile.items()} for profile in graph.profiles],
        "bindings": bindings,
        "plugins": [{**plugin.as_dict(), "path": portable_path(plugin.path, spec)} for plugin in result.plugins]
        or None,
        "fusion": fusion,
        "cost": cost,
        "warnings": list(warnings),
    }
    report.update(graph.sections)
    shapes = graph.sections.get("output_shapes")
    if shapes:
        binding_dims = {b["name"]: b["dims"] for b in report["bindings"] if b["mode"] == "Output"}
        rows, shape_warnings = compare(shapes["declared"], shapes["onnxruntime"], binding_dims)
        report["output_shapes"] = {
            "outputs": rows,
            "checked_at": "min shape of profile 0",
            "onnxruntime_not_run": shapes["not_run"] or None,
        }
        report["warnings"] = [*report["warnings"], *shape_warnings]
    return report

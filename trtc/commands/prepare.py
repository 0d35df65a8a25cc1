"""The graph steps of `trtc build` before TensorRT: load the model, pin and select, run the graph
passes, convert the precision, and hand TensorRT the result as its structure plus its weights
(trtc/graph/weights.py), each held once. What does not decide the graph TensorRT builds (the
output-shape check, the verification of the passes, the costs) is packed into a `ChecksJob`
that runs beside the build (trtc/checked_build.py)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx

from trtc.backend.builder import ModelSource
from trtc.commands.graph_checks import ChecksJob, GraphStructures
from trtc.commands.observers import Quiet
from trtc.commands.pinned_model import load_pinned_model
from trtc.commands.timing import PhaseTimer
from trtc.errors import AccuracyGateError, BuildError
from trtc.graph.file_weights import weights_in_file
from trtc.graph.profiles import model_inputs
from trtc.graph.random_inputs import random_feeds
from trtc.graph.shape_inputs import feed_values
from trtc.graph.weights import SplitModel, split_weights, structure_of
from trtc.incremental.clashes import build_inputs, build_outputs, refuse_clashes
from trtc.incremental.fingerprint import Fingerprint, fingerprint
from trtc.incremental.stamps import stamps
from trtc.passes import PassContext, PassRun, node_origins, removed_nodes, run_passes, select_passes
from trtc.passes.verify import Original
from trtc.precision.keep import resolve_keep_fp32
from trtc.spec.model import Spec


@dataclass
class FinishedGraph:
    """The graph after the passes and precision conversion, as TensorRT builds it."""

    split: SplitModel | None  # its structure and its weights, until `hand_over` serializes them
    runs: list[PassRun]  # of the graph passes
    structures: GraphStructures
    origins: dict[str, tuple[str, ...]]  # node a pass produced -> the user's nodes it stands for
    added: dict[str, str]  # nodes trtc added that stand for no user node (casts, Q/DQ) -> op type
    sections: dict  # of the precision step
    files: list[tuple[Path, str]]  # e.g. a calibration cache, written with the outputs
    source: ModelSource | None = None  # what TensorRT parses (`hand_over`)


@dataclass
class PreparedGraph:
    """What the graph steps hand to TensorRT, to the checks beside it and to the report. The
    ModelProto does not outlive `prepare_graph`: TensorRT builds from `finished.source`."""

    finished: FinishedGraph
    nodes: dict[str, str]  # the node name -> op type of the graph the passes start from, in order
    file_nodes: dict[str, str]  # the user's node name -> op type: the file's, before outputs: and pinning
    steps: list[PassRun]  # outputs: and pinning, as changes (PinnedModel.steps)
    profiles: list
    model_sha256: str
    sections: dict[str, object]
    file_stamps: dict[
        str, list[int]
    ]  # of the model files as hashed: the up-to-date check trusts the hash while they hold
    checks: ChecksJob
    # Filled in from the checks' outcome (trtc/pipeline.py):
    fingerprint: Fingerprint | None = None  # of everything that decided this build, for `trtc build`'s up-to-date check
    costs: dict = field(default_factory=dict)  # the user's nodes at the first profile's opt shapes
    graph_costs: dict = field(
        default_factory=dict
    )  # the nodes after the passes, before precision: the model's FLOPs in every precision
    built_costs: dict = field(default_factory=dict)  # the nodes of the graph TensorRT parses, at the same shapes
    opt_elements: dict[str, int] = field(default_factory=dict)  # ONNX tensor -> elements at those shapes


def prepare_graph(
    spec: Spec,
    observer,
    timer: PhaseTimer,
    known_fingerprint: Fingerprint | None = None,
    depfile_path: Path | None = None,
) -> PreparedGraph:
    """Load the model and run the graph steps in order; each rewrites the model in place and may
    add a report section."""
    model_stamp = stamps([spec.model])  # before reading: a change while it is read shows next time
    with timer.phase("load"):
        front = load_pinned_model(spec, observer, weight_places=True)
    loaded, model, profiles, sections = front.loaded, front.model, front.profiles, front.sections
    refuse_clashes(build_outputs(spec, depfile_path), build_inputs(spec, loaded.files))  # external data is known now
    file_stamps = {**stamps(loaded.files[1:]), **model_stamp}
    model_sha256 = loaded.sha256
    # Computed beside the build (it may hash calibration data; the TensorRT package's version
    # comes from its metadata, whose import alone costs 50 ms).
    make_fingerprint = functools.partial(fingerprint, spec, loaded.files, loaded.sha256, known_fingerprint)
    original_nodes = {node.name: node.op_type for node in model.graph.node}
    # Made by the checks beside the build (numpy.random's import alone costs 50 ms).
    min_feeds = functools.partial(
        random_feeds,
        model_inputs(model),
        {name: r.min for name, r in profiles[0].items()},
        spec.value_ranges,
        fixed=feed_values(profiles[0], "min"),
    )
    passes = select_passes(spec.fusion)
    verify = bool(passes) and spec.fusion.verify != "off"
    # Node names and dim names do not change what onnxruntime computes: then it reads the weights
    # from the user's file (or the file itself) and Python holds no second copy of them meanwhile.
    original_structure = structure_of(model)
    single_file = front.computes_as_file and len(loaded.files) == 1
    original = Original(
        (weights_in_file(original_structure, loaded.files[0], loaded.weight_places) or loaded.files[0])
        if single_file
        else split_weights(model),
        functools.partial(reload_original, spec, loaded.sha256),
    )
    sections["output_shapes"] = None  # filled in by the checks beside the build, in the report's order
    if verify:
        sections["verification"] = None
    sections["passes"] = None

    observer.stage("running graph passes")
    with timer.phase("passes"):
        runs = run_passes(model, passes)
    as_file = (loaded.files[0], front.as_read) if len(loaded.files) == 1 else None
    finished, rewritten = finish_graph(
        spec,
        model,
        runs,
        original_nodes,
        original_structure,
        profiles,
        loaded.sha256,
        observer,
        timer,
        verify=verify,
        as_file=as_file,
    )
    file_nodes, steps = front.file_nodes, front.steps
    del model, front, loaded  # the protobuf's copy of the weights goes: the split holds them now
    with timer.phase("serialize"):
        hand_over(finished, keep=bool(spec.output.onnx))
    checks = ChecksJob(
        spec, profiles, original, rewritten, passes, runs, min_feeds, finished.structures, make_fingerprint
    )
    return PreparedGraph(
        finished=finished,
        nodes=original_nodes,
        file_nodes=file_nodes,
        steps=steps,
        profiles=profiles,
        model_sha256=model_sha256,
        sections=sections,
        file_stamps=file_stamps,
        checks=checks,
    )


def finish_graph(
    spec: Spec,
    model: onnx.ModelProto,
    runs: list[PassRun],
    original_nodes: dict[str, str],
    original_structure: onnx.ModelProto,
    profiles: list,
    model_sha256: str,
    observer,
    timer: PhaseTimer,
    verify: bool,
    as_file: tuple[Path, bytes] | None = None,
) -> tuple[FinishedGraph, onnx.ModelProto | SplitModel | None]:
    """Precision conversion of the passes' result, then its split; and what verification checks
    (the passes' result, None when not checked). Run again on the repaired graph when
    verification dropped a change. `as_file`: the model file (without external data) and its
    structure as read; when no step changed the graph, TensorRT parses that file itself."""
    origins = node_origins(runs)
    changed = any(run.changes for run in runs)
    passed = structure_of(model)
    # Verification checks what the passes made; precision conversion rewrites it, so a converted
    # build keeps the passes' result apart (the FP32 build shares its weights with TensorRT).
    rewritten: onnx.ModelProto | SplitModel | None = None
    if verify and changed and spec.precision.mode != "fp32":
        rewritten = split_weights(model)
    if spec.precision.mode != "fp32":
        observer.stage(f"converting to {spec.precision.mode} and measuring accuracy")
    keep_fp32, keep_warnings = resolve_keep_fp32(spec.precision.keep_fp32, model, origins, original_nodes)
    for warning in keep_warnings:
        observer.warning(warning)
    precision_spec = replace(spec, precision=replace(spec.precision, keep_fp32=keep_fp32))
    sections, files = {}, []
    if spec.precision.mode != "fp32":
        from trtc.precision.step import apply_precision  # calibration, autocast, accuracy: not imported for FP32

        with timer.phase("precision"):
            try:
                precision = apply_precision(
                    model,
                    precision_spec,
                    model_inputs(model),
                    profiles[0],
                    model_sha256,
                    lambda done, total: observer.progress("calibrating", done, total),
                )
            except AccuracyGateError as failure:  # no plan, but the figures and the layer ranking are kept
                from trtc.commands.gate_report import write_gate_report

                failure.details.append(
                    write_gate_report(spec, failure, list(getattr(observer, "warnings", keep_warnings)), model_sha256)
                )
                raise
        for warning in precision.warnings:
            observer.warning(warning)
        model, sections, files = precision.model, precision.sections, precision.files
        if "seconds" in (sections.get("calibration") or {}):
            timer.add_part("precision", "calibration", sections["calibration"]["seconds"])
        from trtc.precision.concat_split import split_origins  # convolutions split per Concat branch

        origins = {
            **origins,
            **split_origins((sections.get("calibration") or {}).get("split_concat_readers", {}), origins),
        }
    converted = spec.precision.mode != "fp32"
    built = structure_of(model) if converted else passed
    added = {n.name: n.op_type for n in model.graph.node if n.name not in original_nodes and n.name not in origins}
    finished = FinishedGraph(
        None, runs, GraphStructures(original_structure, passed, built), origins, added, sections, files
    )
    # Initializer data changes only with new names, or in precision conversion: an equal structure
    # is the file's graph.
    if as_file is not None and not converted and not changed and built.SerializeToString() == as_file[1]:
        finished.source = ModelSource(path=as_file[0])  # as the direct API builds: nothing to serialize
        return finished, rewritten
    with timer.phase("serialize"):
        finished.split = split_weights(model)
    return finished, finished.split if verify and changed and rewritten is None else rewritten


def hand_over(finished: FinishedGraph, keep: bool) -> None:
    """The graph serialized, for TensorRT to parse and then own: given by reference, TensorRT-RTX
    copies every weight once more while it builds (110 MB more at its peak on a 100 MB model).
    The serialization is the split's buffer, which holds the weights once (onnxruntime runs on
    them in place); the builder lets go of it once parsed unless `keep` (output.onnx writes it),
    and it is freed once the checks beside the build let go of the split too."""
    if finished.source is not None:  # the user's file
        return
    data = finished.split.serialized()
    finished.source = ModelSource(split=finished.split) if data is None else ModelSource(data=data, release=not keep)
    finished.split = None


def remake_model(spec: Spec, excluded: frozenset[str]) -> onnx.ModelProto:
    """The graph a build handed TensorRT, made again with its weights (the passes without the
    changes verification dropped): TensorRT owned them during the build, and only diagnosing a
    failed build needs them afterwards, next to which making them again costs little."""
    front = load_pinned_model(spec, Quiet())
    model = front.model
    original_nodes = {node.name: node.op_type for node in model.graph.node}
    runs = run_passes(model, select_passes(spec.fusion), PassContext(exclude=excluded))
    finished, _ = finish_graph(
        spec,
        model,
        runs,
        original_nodes,
        structure_of(model),
        front.profiles,
        front.loaded.sha256,
        Quiet(),
        PhaseTimer(),
        verify=False,
    )
    return finished.split.joined()


def reload_original(spec: Spec, sha256: str) -> onnx.ModelProto:
    """The model the passes started from, read again: only finding a change to drop needs it with
    its weights, and holding a copy of a large model through every build to spare that is not
    worth its memory."""
    front = load_pinned_model(spec, Quiet())
    if front.loaded.sha256 != sha256:
        raise BuildError(f"model: {spec.model} changed while it was built; run trtc build again")
    return front.model


def node_places(graph: PreparedGraph) -> dict:
    """What the fusion map needs to place every node of the user's file: its nodes, what stands
    for them (through pinning and the passes), what trtc added, what the passes removed and what
    was pruned before them (by `outputs:` or pinning)."""
    lineage = [*graph.steps, *graph.finished.runs]
    gone = removed_nodes(lineage)
    before_passes = {run.name for run in graph.steps}
    return {
        "onnx_nodes": graph.file_nodes,
        "origins": {**graph.finished.origins, **node_origins(lineage)},  # the former: precision's splits too
        "added": graph.finished.added,
        "removed": {name: step for name, step in gone.items() if step not in before_passes},
        "pruned": {name: step for name, step in gone.items() if step in before_passes},
    }


def model_source(model: onnx.ModelProto) -> ModelSource:
    """`model` as TensorRT's parser takes it: its structure, and its weights where they are."""
    return ModelSource(split=split_weights(model))

"""`trtc build` as one readable sequence of steps: spec -> graph -> TensorRT -> plan + report.

The CLI passes an observer for progress; everything else it needs comes back in `BuildOutcome`.
"""

from __future__ import annotations

import gc
import time

_IMPORTS_STARTED = time.perf_counter()
_COLLECTING = gc.isenabled()
gc.disable()  # the imports below make ~40 000 objects that live as long as the process: collecting finds nothing

import sys  # noqa: E402 - after the clock that times these imports
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Protocol  # noqa: E402

from trtc.backend.builder import BuildObserver, BuildSettings, build_plan, compute_capabilities  # noqa: E402
from trtc.backend.trt_import import import_tensorrt  # noqa: E402
from trtc.commands.build_report import build_report  # noqa: E402
from trtc.commands.checked_build import ChecksFailed, build_beside_checks  # noqa: E402
from trtc.commands.graph_checks import ChecksOutcome, GraphCosts, graph_costs  # noqa: E402
from trtc.commands.observers import recording  # noqa: E402
from trtc.commands.prepare import (  # noqa: E402
    PreparedGraph,
    finish_graph,
    hand_over,
    prepare_graph,
    remake_model,
)
from trtc.commands.timing import PhaseTimer  # noqa: E402
from trtc.errors import BuildError, TrtcError  # noqa: E402
from trtc.hashing import HashingBeside  # noqa: E402
from trtc.incremental import depfile  # noqa: E402
from trtc.incremental.fingerprint import Fingerprint, with_written_files  # noqa: E402
from trtc.incremental.stamps import portable_path, stamp  # noqa: E402
from trtc.memory import map_large_blocks, trim_heap  # noqa: E402
from trtc.outputs import StagedOutputs  # noqa: E402
from trtc.passes import attach_costs  # noqa: E402
from trtc.report.html import render_html  # noqa: E402
from trtc.report.json_text import strict_json  # noqa: E402
from trtc.report.kernel_cost import choose_gpu  # noqa: E402
from trtc.report.markdown import render_markdown  # noqa: E402
from trtc.report.passes import passes_section  # noqa: E402
from trtc.spec.model import Spec  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - _IMPORTS_STARTED  # onnx, numpy and trtc's own modules: the build's first phase

# Nor will any later collection look at them: the one before TensorRT builds took 67 ms, 6 ms without them.
gc.freeze()
if _COLLECTING:
    gc.enable()


class PipelineObserver(BuildObserver, Protocol):
    def stage(self, name: str) -> None: ...
    def warning(self, text: str) -> None: ...
    def progress(self, label: str, done: int, total: int) -> None: ...


@dataclass
class BuildOutcome:
    report: dict
    written: list[Path]
    fingerprint: Fingerprint


def build(
    spec: Spec,
    observer: PipelineObserver,
    diagnose: bool = True,
    depfile_path: Path | None = None,
    known_fingerprint: Fingerprint | None = None,
) -> BuildOutcome:
    """`depfile_path`: also write a Make rule, with the other outputs (refused before TensorRT builds,
    and checked against the inputs with the other outputs). `known_fingerprint`: the up-to-date
    check's, when it just computed one."""
    observer = recording(observer)  # the report's warnings are the ones shown
    timer = PhaseTimer()
    _add_process_start(timer)
    gpu = choose_gpu(spec.target.gpu, spec.target.compute_capabilities)
    with timer.phase("imports"):
        trt = import_tensorrt(spec.target.backend)
    compute_capabilities(trt, spec.target.compute_capabilities)  # a target the backend lacks, before the model is read
    timing_cache = _read_timing_cache(spec)
    graph = prepare_graph(spec, observer, timer, known_fingerprint, depfile_path)
    rule = _make_rule(spec, graph, depfile_path) if depfile_path else None
    settings = BuildSettings.for_spec(spec, graph.profiles, timing_cache)
    _return_freed_memory()
    map_large_blocks()
    meanwhile = ", verifying the graph passes in onnxruntime meanwhile" if graph.checks.rewritten is not None else ""
    observer.stage(f"building with {trt.name} {trt.version}{meanwhile}")
    try:
        result, checks = build_beside_checks(trt, graph.finished.source, settings, graph.checks, observer, timer)
        _take_checks(graph, checks, observer)
        if checks.repaired is not None:  # verification dropped a change: the plan comes from the graph without it
            result = None  # its plan (hundreds of MB) goes before the next build
            _repair(spec, graph, checks, observer, timer)
            observer.stage(f"building again with {trt.name} {trt.version}, without the dropped change")
            with timer.phase("tensorrt"):
                result = build_plan(trt, graph.finished.source, settings, observer)
    except ChecksFailed as failed:  # e.g. `verify: strict`: no TensorRT failure to diagnose
        raise failed.error from None
    except TrtcError as error:
        if diagnose and type(error) is BuildError:  # the parser names its nodes; the builder often does not
            error = _diagnosed(error, trt, spec, graph, settings, observer)
        _keep_failure_log(spec, error)  # after the diagnosis: an interrupted one leaves no log behind
        error.details.extend(_remedies(graph))
        raise error from None

    if not graph.sections["passes"]["settled"]:
        observer.warning(
            f"graph passes still changed the graph in their last allowed round ({graph.sections['passes']['rounds']}); "
            "the rest is left to TensorRT"
        )
    for warning in result.warnings:
        observer.warning(warning)
    graph.fingerprint = with_written_files(graph.fingerprint, spec, graph.finished.files)
    observer.stage("writing outputs")
    with StagedOutputs() as staged:
        for path, text in graph.finished.files:  # the calibration cache, a prerequisite of the plan: not newer than it
            staged.write(path, text)
        # The plan is hashed and written in threads while the report is made (both let go of the GIL).
        plan_hashing, plan_written = HashingBeside(result.plan), staged.write_beside(spec.output.plan, result.plan)
        with timer.phase("report"):
            report = build_report(spec, graph, trt, result, observer, gpu)
            report["build"]["plan_sha256"] = plan_hashing.finish().hexdigest()
            report["build"]["phases"] = timer.as_dict()  # so far, for the Markdown and HTML; final below
            markdown, html = render_markdown(report), render_html(report)
        with timer.phase("write"):
            staged.write(spec.output.markdown, markdown)
            staged.write(spec.output.html, html)
            staged.write(spec.output.log, _log_text(result.log))
            plan_file = plan_written()
        stamped = {**graph.file_stamps, str(spec.output.plan): stamp(plan_file)}
        report["build"]["file_stamps"] = {portable_path(Path(path), spec): value for path, value in stamped.items()}
        report["build"]["phases"] = timer.as_dict()  # all but writing this report and renaming the files into place
        staged.write(spec.output.report, strict_json(report) + "\n")
        if spec.output.onnx:
            source = graph.finished.source
            staged.write(
                spec.output.onnx,
                source.data
                if source.data is not None
                else source.path.read_bytes()
                if source.path is not None
                else source.split.joined().SerializeToString(),
            )
        if spec.target.timing_cache and result.timing_cache:
            staged.write(spec.target.timing_cache, result.timing_cache)
        if rule is not None:
            staged.write(depfile_path, depfile.encoded(rule))
        staged.commit()
    return BuildOutcome(report=report, written=spec.output.all_files(), fingerprint=graph.fingerprint)


_process_start_counted = False


def _add_process_start(timer: PhaseTimer) -> None:
    """The process's work before this module: the CLI and the spec (from trtc/entry.py on, when
    trtc runs as its own process), then these imports. Only the first build of a process had
    them to do."""
    global _process_start_counted
    if _process_start_counted:
        return
    _process_start_counted = True
    entry = sys.modules.get("trtc.entry")  # absent when the CLI runs in-process (tests)
    if entry is not None:
        timer.add("cli and spec", _IMPORTS_STARTED - entry.STARTED)
    timer.add("imports", IMPORT_SECONDS)


def _make_rule(spec: Spec, graph: PreparedGraph, depfile_path: Path) -> str:
    """The Make rule, made before TensorRT builds so that a name Make cannot express is refused
    first; the fingerprint it needs is then computed here rather than beside the build."""
    now = graph.checks.make_fingerprint()
    graph.checks.make_fingerprint = lambda: now
    return depfile.render(spec.output.all_files(), [spec.source, *now.inputs])


def _take_checks(graph: PreparedGraph, checks: ChecksOutcome, observer: PipelineObserver) -> None:
    """The report sections, warnings and costs that the checks beside the build found."""
    graph.sections["output_shapes"] = checks.output_shapes
    graph.fingerprint = checks.fingerprint
    verification = checks.verification
    if verification is not None:
        graph.sections["verification"] = verification.section()
        for dropped in verification.dropped:
            observer.warning(
                f"verification: dropped the {dropped['pass']} change on {', '.join(dropped['nodes'])}: "
                f"it changed the outputs ({dropped['problem']})"
            )
        if verification.status == "not verified":
            observer.warning(f"graph passes not verified: {verification.reason}")
    _take_costs(graph, checks.costs)


def _take_costs(graph: PreparedGraph, costs: GraphCosts) -> None:
    attach_costs(graph.finished.runs, costs.costs, costs.after_passes, costs.made)
    graph.costs, graph.graph_costs, graph.built_costs, graph.opt_elements = (
        costs.costs,
        costs.after_passes,
        costs.built,
        costs.opt_elements,
    )
    graph.sections["passes"] = passes_section(graph.finished.runs)


def _repair(
    spec: Spec, graph: PreparedGraph, checks: ChecksOutcome, observer: PipelineObserver, timer: PhaseTimer
) -> None:
    """The graph without the changes verification dropped, converted and serialized again (the
    first build's precision conversion started from the unrepaired graph)."""
    job = graph.checks
    graph.finished, _ = finish_graph(
        spec,
        checks.repaired,
        checks.repaired_runs,
        graph.nodes,
        job.structures.original,
        graph.profiles,
        graph.model_sha256,
        observer,
        timer,
        verify=False,
    )
    checks.repaired = None
    with timer.phase("serialize"):
        hand_over(graph.finished, keep=bool(spec.output.onnx))
    _take_costs(
        graph,
        graph_costs(graph.finished.structures, graph.profiles[0], graph.finished.runs),
    )


def _return_freed_memory() -> None:
    """The graph steps free the model (hundreds of MB) before TensorRT builds; collect what only
    cycles hold and hand the pages back, so the build's peak memory is TensorRT's own."""
    import gc

    gc.collect()
    trim_heap()


def _read_timing_cache(spec: Spec) -> bytes | None:
    path = spec.target.timing_cache
    if path is None:
        return None
    return path.read_bytes() if path.exists() else b""


def _diagnosed(
    error: BuildError, trt, spec: Spec, graph: PreparedGraph, settings: BuildSettings, observer
) -> BuildError:
    """Bisect the graph with real sub-builds to the node where TensorRT's failure starts."""
    from trtc.commands.diagnose import explain, localize  # only a failed build needs them

    dropped = (graph.sections.get("verification") or {}).get("dropped_changes", [])
    model = remake_model(spec, frozenset(node for change in dropped for node in change["nodes"]))
    culprit = localize(
        trt,
        model,
        settings,
        progress=lambda done, total: observer.progress("sub-builds", done, total),
        failure=error.message,
        bisecting=lambda: observer.stage(
            "diagnosing the failure: bisecting the graph with sub-builds (--no-diagnose skips this)"
        ),
    )
    if culprit is None:
        error.details.append("trtc could not narrow the failure to one node within 24 sub-builds or 120 s")
        return error
    diagnosed = explain(culprit, error.message)
    diagnosed.log = getattr(error, "log", None)
    return diagnosed


def _remedies(graph: PreparedGraph) -> list[str]:
    """Hints for a failed build; never in the way of the error itself."""
    from trtc.commands.remedies import remedies

    try:
        return remedies(graph.finished.structures.built)
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

"""The checks of a build that do not decide what TensorRT builds: the output-shape check (the
user's model in onnxruntime at the first profile's min shape), the verification of the graph
passes, and the cost tables. They run beside TensorRT's build (trtc/checked_build.py) and read
only what their `ChecksJob` holds, which nothing else changes meanwhile; only a verification
that drops a change makes the build start again.

onnxruntime runs one session at a time (the original, then the rewritten graph), so one copy of
the weights sits beside the one TensorRT builds from."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx

from trtc.graph.cost import NodeCost, cost_of, node_costs, tensor_elements
from trtc.graph.declared import declared_shapes, shapes_of
from trtc.graph.reference import OnDemandReference, ReferenceUnavailable
from trtc.graph.shapes import tensor_types
from trtc.graph.weights import SplitModel
from trtc.incremental.fingerprint import Fingerprint
from trtc.memory import trim_heap
from trtc.passes import PassRun
from trtc.passes.verify import BESIDE_THREADS, Original, Verification
from trtc.passes.verify_step import verify_step
from trtc.spec.model import ShapeRange, Spec


class ChecksStopped(Exception):
    """The build stopped (an error or an interrupt in the main thread): the checks end early."""


@dataclass
class GraphStructures:
    """The graph at each stage, without its weights: what the costs are computed on."""

    original: onnx.ModelProto  # as loaded, outputs selected, inputs pinned
    passed: onnx.ModelProto  # after the graph passes
    built: onnx.ModelProto  # what TensorRT parses (after precision conversion)


@dataclass
class ChecksJob:
    """What the checks read; they let go of the models' weights as soon as they are done with them."""

    spec: Spec
    profiles: list[dict[str, ShapeRange]]
    original: Original | None
    rewritten: onnx.ModelProto | SplitModel | None  # what the passes made; None: verification is off
    passes: list
    runs: list[PassRun]
    make_min_feeds: Callable[
        [], dict[str, np.ndarray]
    ]  # inputs at the first profile's min shape: the output-shape check's
    structures: GraphStructures
    make_fingerprint: Callable[[], Fingerprint]  # of what decided the build, for the report


@dataclass
class GraphCosts:
    costs: dict[str, NodeCost]  # the user's nodes at the first profile's opt shapes
    after_passes: dict[str, NodeCost]  # the graph after the passes, at the same shapes
    built: dict[str, NodeCost]  # the nodes of the graph TensorRT parses
    opt_elements: dict[str, int]  # ONNX tensor -> elements at those shapes
    made: dict[tuple[int, str], NodeCost] = field(default_factory=dict)  # (run, node): made there, rewritten later


@dataclass
class ChecksOutcome:
    output_shapes: dict
    verification: Verification | None
    repaired: onnx.ModelProto | None  # the passes' result without the changes verification dropped
    repaired_runs: list[PassRun] | None
    costs: GraphCosts
    fingerprint: Fingerprint
    seconds: dict[str, float] = field(default_factory=dict)


def run_checks(job: ChecksJob, stop: threading.Event) -> ChecksOutcome:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    original_runs = OnDemandReference(
        job.original.source, optimize=False, threads=BESIDE_THREADS
    )  # unoptimized: starts faster
    min_feeds = job.make_min_feeds()
    try:
        min_outputs, unobserved = original_runs.run(min_feeds), ""
    except ReferenceUnavailable as error:
        min_outputs, unobserved = None, error.message
    output_shapes = {
        "declared": declared_shapes(job.structures.original),
        "onnxruntime": shapes_of(min_outputs),
        "not_run": unobserved,
    }
    seconds["output shapes"] = time.perf_counter() - started
    _stop_if(stop)
    verification, repaired, repaired_runs = None, None, None
    if job.rewritten is not None:
        started = time.perf_counter()
        repaired, verification, repaired_runs = verify_step(
            job.original,
            original_runs,
            job.structures.original,
            job.rewritten,
            job.passes,
            job.runs,
            job.spec,
            job.profiles,
            (min_feeds, min_outputs),
        )
        seconds["verification"] = time.perf_counter() - started
    original_runs.close()
    job.original = job.rewritten = None  # their weights go too (the job is the last to hold them)
    trim_heap()  # the sessions' memory, before TensorRT's build reaches its peak
    _stop_if(stop)
    started = time.perf_counter()
    costs = graph_costs(job.structures, job.profiles[0], job.runs)
    seconds["costs"] = time.perf_counter() - started
    started = time.perf_counter()
    fingerprint = job.make_fingerprint()
    seconds["fingerprint"] = time.perf_counter() - started
    return ChecksOutcome(output_shapes, verification, repaired, repaired_runs, costs, fingerprint, seconds)


def graph_costs(structures: GraphStructures, profile: dict[str, ShapeRange], runs: list[PassRun]) -> GraphCosts:
    """FLOPs and bytes of every node at `profile`'s opt shapes, before and after the passes `runs`
    and as built (shape inference reads no weights, so structures suffice); and of the nodes a
    change made that a later one rewrote, in the graph of the run that made them."""
    changed = any(run.changes for run in runs)
    opt_shapes = {name: shape_range.opt for name, shape_range in profile.items()}
    types = tensor_types(structures.original, opt_shapes)
    costs, opt_elements = node_costs(structures.original, types=types), tensor_elements(types)
    after = costs
    if changed:
        types = tensor_types(structures.passed, opt_shapes)
        after = node_costs(structures.passed, types=types)
        opt_elements.update(tensor_elements(types))
    built = after
    if structures.built is not structures.passed:
        types = tensor_types(structures.built, opt_shapes)
        built = node_costs(structures.built, types=types)
        opt_elements.update(tensor_elements(types))
    return GraphCosts(costs, after, built, opt_elements, _made_costs(runs, after, opt_shapes))


def _made_costs(runs: list[PassRun], final: dict, opt_shapes: dict) -> dict[tuple[int, str], NodeCost]:
    """(run index, node) -> cost, for each node a run made that is gone from the `final` graph."""
    made = {}
    for index, run in enumerate(runs):
        gone = {n for change in run.changes for n in change.nodes_after if n not in final}
        if gone and run.graph is not None:
            types = tensor_types(run.graph, opt_shapes)
            made.update({(index, n.name): cost_of(n, types) for n in run.graph.graph.node if n.name in gone})
    return made


def _stop_if(stop: threading.Event) -> None:
    if stop.is_set():
        raise ChecksStopped()

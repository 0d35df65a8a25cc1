"""Name the culprit when TensorRT's builder fails.

When TensorRT's message names a layer that is a node of the model (`IShuffleLayer p2o.Reshape.79:
reshaping failed`), that node is the culprit. Otherwise (an internal assertion) the graph's nodes,
in topological order, are cut into prefixes: the first i nodes, with every tensor they produce
that later nodes or the graph read marked as an output. Real sub-builds bisect for the shortest
prefix that still fails the same way (a sub-build that fails otherwise, out of workspace for a
prefix whose outputs are large, says nothing about this failure); its last node is the culprit.
Bounded by a number of sub-builds and a time limit. The pipeline adds known remedies
(trtc/commands/remedies.py) to the message.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

import onnx

from trtc.backend.builder import BuildSettings, ModelSource, build_plan
from trtc.backend.trt_import import TensorRT
from trtc.backend.trt_logger import clean
from trtc.errors import BuildError
from trtc.graph.shapes import tensor_types
from trtc.graph.subgraphs import outer_scope_reads

# How TensorRT names a layer in its errors: `IShuffleLayer p2o.Reshape.79: reshaping failed ...`.
_NAMED_LAYER = re.compile(r"\bI[A-Za-z]*Layer (.+?): ")
_ERROR_KIND = re.compile(r"Error Code (\d+): ([^(]+?) \((\S+(?: \S+){0,2})")
_PROFILE_SHAPES = re.compile(r"k(MIN|OPT|MAX) values for profile (\d+) violate shape constraints")


@dataclass
class Culprit:
    node: onnx.NodeProto
    message: str
    builds: int
    seconds: float


def localize(
    trt: TensorRT,
    model: onnx.ModelProto,
    settings: BuildSettings,
    max_builds: int = 24,
    max_seconds: float = 120.0,
    progress=None,
    failure: str = "",
    bisecting: Callable[[], None] | None = None,
) -> Culprit | None:
    """`failure`: TensorRT's message for the whole graph; `bisecting`: called before the first
    sub-build (none runs when the message names the node)."""
    named = _named_node(model, failure)
    if named is not None:
        return Culprit(named, failure, 0, 0.0)
    if bisecting is not None:
        bisecting()
    nodes = list(model.graph.node)
    started, builds = time.perf_counter(), 0
    types = tensor_types(model)
    low, high, last_message = 0, len(nodes), ""
    while high - low > 1 and builds < max_builds and time.perf_counter() - started < max_seconds:
        middle = (low + high) // 2
        builds += 1
        if progress:
            progress(builds, max_builds)
        failed, message = _fails(trt, _prefix(model, middle, types), settings)
        if failed and _same_kind(message, failure):
            high, last_message = middle, message
        else:
            low = middle
    if high - low != 1:
        return None
    return Culprit(nodes[high - 1], last_message, builds, time.perf_counter() - started)


def _named_node(model: onnx.ModelProto, message: str) -> onnx.NodeProto | None:
    by_name = {node.name: node for node in model.graph.node if node.name}
    named = [by_name[m.group(1)] for m in _NAMED_LAYER.finditer(message) if m.group(1) in by_name]
    return named[0] if named else None


def _same_kind(message: str, failure: str) -> bool:
    """Whether a sub-build's failure is the whole graph's: the same error code, category and first
    words (any failure counts when the whole graph's message has no such form)."""
    kind = _ERROR_KIND.search(failure)
    return kind is None or (found := _ERROR_KIND.search(message)) is not None and found.groups() == kind.groups()


def explain(culprit: Culprit, tensorrt_message: str) -> BuildError:
    node = culprit.node
    found = (
        f"found by {culprit.builds} sub-builds in {culprit.seconds:.1f} s"
        if culprit.builds
        else "named in TensorRT's message"
    )
    lines = [f"culprit: node '{node.name}' ({node.op_type}), {found}", f"TensorRT said: {tensorrt_message}"]
    shapes = _PROFILE_SHAPES.search(tensorrt_message)
    if shapes:
        which, profile = shapes.group(1).lower(), shapes.group(2)
        lines.append(
            f"hint: profile {profile}'s {which} shapes break a shape constraint of the model (at node '{node.name}'): "
            f"give inputs: {which} shapes the model runs at"
        )
    if node.op_type in ("If", "Loop", "Scan"):
        inner = [
            f"{n.name or n.op_type} ({n.op_type})"
            for a in node.attribute
            if a.type == onnx.AttributeProto.GRAPH
            for n in a.g.node
        ]
        lines.append(f"inside the {node.op_type}: {', '.join(inner[:8])}" + (" ..." if len(inner) > 8 else ""))
    return BuildError(
        f"TensorRT failed to build the engine; the failure starts at node '{node.name}' ({node.op_type})", lines
    )


def _prefix(model: onnx.ModelProto, count: int, types) -> onnx.ModelProto:
    graph = model.graph
    kept, rest = list(graph.node[:count]), list(graph.node[count:])
    produced = {out for node in kept for out in node.output if out}
    needed_later = {name for node in rest for name in node.input} | {v.name for v in graph.output}
    outputs = [name for node in kept for name in node.output if name in needed_later]
    used = {name for node in kept for name in [*node.input, *outer_scope_reads(node)]}  # an If branch reads x too
    sub = onnx.ModelProto()
    sub.ir_version, sub.producer_name = model.ir_version, "trtc-diagnose"
    sub.opset_import.extend(model.opset_import)
    sub.graph.name = "prefix"
    sub.graph.node.extend(kept)
    sub.graph.input.extend(v for v in graph.input if v.name in used)
    sub.graph.initializer.extend(i for i in graph.initializer if i.name in used)
    for name in dict.fromkeys(outputs) if outputs else [o for node in kept[-1:] for o in node.output if o in produced]:
        known = types.get(name)
        sub.graph.output.append(
            onnx.helper.make_tensor_value_info(name, known.elem_type, None)
            if known
            else onnx.helper.make_empty_tensor_value_info(name)
        )
    return sub


def _fails(trt: TensorRT, model: onnx.ModelProto, settings: BuildSettings) -> tuple[bool, str]:
    inputs = {v.name for v in model.graph.input}
    profiles = [{name: r for name, r in profile.items() if name in inputs} for profile in settings.profiles]
    try:
        build_plan(
            trt,
            ModelSource(data=model.SerializeToString()),
            BuildSettings(**{**settings.__dict__, "profiles": profiles}),
        )
    except BuildError as error:
        return True, clean(error.message)
    return False, ""

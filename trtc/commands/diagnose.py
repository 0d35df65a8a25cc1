"""Name the culprit when TensorRT's builder fails without naming a node (an internal assertion).

The graph's nodes, in topological order, are cut into prefixes: the first i nodes, with every
tensor they produce that later nodes or the graph read marked as an output. Real sub-builds
bisect for the shortest prefix that still fails; its last node is the culprit. Bounded by a
number of sub-builds and a time limit. The pipeline adds known remedies (trtc/commands/remedies.py) to the message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import onnx

from trtc.backend.builder import BuildSettings, ModelSource, build_plan
from trtc.backend.trt_import import TensorRT
from trtc.backend.trt_logger import clean
from trtc.errors import BuildError
from trtc.graph.shapes import tensor_types


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
) -> Culprit | None:
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
        if failed:
            high, last_message = middle, message
        else:
            low = middle
    if high - low != 1:
        return None
    return Culprit(nodes[high - 1], last_message, builds, time.perf_counter() - started)


def explain(culprit: Culprit, tensorrt_message: str) -> BuildError:
    node = culprit.node
    lines = [
        f"culprit: node '{node.name}' ({node.op_type}), found by {culprit.builds} sub-builds in {culprit.seconds:.1f} s",
        f"TensorRT said: {tensorrt_message}",
    ]
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
    used = {name for node in kept for name in node.input}
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

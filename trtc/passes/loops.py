"""Loops whose trip count became a constant (after pinning or folding). Each is reported; a small
one (at most MAX_UNROLL iterations) with no early exit and no nested subgraphs is unrolled into
plain nodes, one copy of the body per iteration, and kept only if onnxruntime computes the same
outputs with and without it (the `check` the caller gives); otherwise the Loop stays and the
report says why. TensorRT then sees straight-line layers instead of a loop it may not support."""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from trtc.graph.graph_index import GraphIndex
from trtc.graph.reference import Reference, ReferenceUnavailable
from trtc.passes.base import Change

MAX_UNROLL = 16
# check(before, after) -> None when they agree, else why not.
Check = Callable[[onnx.ModelProto, onnx.ModelProto], "str | None"]


def resolve_constant_loops(
    model: onnx.ModelProto, check: Check | None, changes: list[Change] | None = None
) -> list[dict]:
    """The report's entry of each Loop with a constant trip count; `changes` receives one Change
    per Loop unrolled (the Loop -> the nodes it became)."""
    resolved = []
    loops = [node.name for node in model.graph.node if node.op_type == "Loop" and node.domain in ("", "ai.onnx")]
    for name in loops:
        index = GraphIndex(model.graph)  # afresh: an unrolled or restored loop changed the graph
        node = next(n for n in model.graph.node if n.name == name)
        trip = index.constant(node.input[0]) if len(node.input) > 0 and node.input[0] else None
        condition = index.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else np.array(True)
        if trip is None or condition is None or trip.size != 1 or condition.size != 1:
            continue
        count = int(trip.reshape(-1)[0]) if bool(condition.reshape(-1)[0]) else 0
        entry = {"node": node.name, "op_type": "Loop", "trip_count": count, "unrolled": False}
        reason = _why_not(node, count)
        if reason is None and check is None:
            reason = "no onnxruntime check available"
        if reason is None:
            before = onnx.ModelProto()
            before.CopyFrom(model)
            made = _unroll(model, node, count)
            problem = check(before, model)
            if problem is None:
                entry["unrolled"] = True
                if changes is not None:
                    changes.append(Change("pinning", "unroll", (name,), made, f"Loop unrolled: {count} iteration(s)"))
            else:
                model.CopyFrom(before)
                reason = f"unrolled graph not kept: {problem}"
        if reason:
            entry["reason"] = reason
        resolved.append(entry)
    return resolved


def onnxruntime_agreement(feeds: dict[str, np.ndarray] | Callable[[], dict[str, np.ndarray]]) -> Check:
    """A check that runs both models on `feeds` and compares every output (dtype-aware). `feeds`
    may be a function that makes them, called at the first check (most models have no loop)."""

    def check(before: onnx.ModelProto, after: onnx.ModelProto) -> str | None:
        nonlocal feeds
        feeds = feeds() if callable(feeds) else feeds
        try:
            expected, got = Reference(before).run(feeds), Reference(after).run(feeds)
        except ReferenceUnavailable as error:
            return error.message
        for name, value in expected.items():
            other = got.get(name)
            if other is None or other.shape != value.shape:
                return f"output '{name}' changed shape"
            if not np.allclose(value, other, rtol=1e-4, atol=1e-5, equal_nan=True):
                return f"output '{name}' changed values"
        return None

    return check


def _body(node: onnx.NodeProto) -> onnx.GraphProto:
    return next(a.g for a in node.attribute if a.name == "body")


def _why_not(node: onnx.NodeProto, count: int) -> str | None:
    body = _body(node)
    if count < 1 or count > MAX_UNROLL:
        return f"{count} iterations (trtc unrolls 1 to {MAX_UNROLL})"
    if any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for inner in body.node
        for a in inner.attribute
    ):
        return "its body holds nested subgraphs"
    condition_in, condition_out = body.input[1].name, body.output[0].name
    if condition_out != condition_in:
        producer = next((n for n in body.node if condition_out in n.output), None)
        constant = (
            producer is not None
            and producer.op_type == "Constant"
            and all(numpy_helper.to_array(a.t).all() for a in producer.attribute if a.name == "value")
        )
        if not (
            constant or (producer is not None and producer.op_type == "Identity" and producer.input[0] == condition_in)
        ):
            return "its body computes an exit condition"
    return None


def _unroll(model: onnx.ModelProto, node: onnx.NodeProto, count: int) -> tuple[str, ...]:
    """Replace the Loop `node` by `count` copies of its body; the names of the nodes made."""
    graph, body = model.graph, _body(node)
    carried_count = len(node.input) - 2
    carried = list(node.input[2:])
    scans: list[list[str]] = [[] for _ in range(len(body.output) - 1 - carried_count)]
    new_nodes: list[onnx.NodeProto] = []
    local = {value.name for value in body.input} | {out for inner in body.node for out in inner.output if out}
    local |= {init.name for init in body.initializer}
    for iteration in range(count):
        prefix = f"{node.name}/iter{iteration}/"
        names = {name: prefix + name for name in local}
        names[body.input[0].name] = _constant(new_nodes, prefix + "iteration", np.array(iteration, np.int64))
        names[body.input[1].name] = _constant(new_nodes, prefix + "condition", np.array(True))
        for value, outer in zip(body.input[2:], carried):
            names[value.name] = outer
        for init in body.initializer:
            _constant(new_nodes, names[init.name], numpy_helper.to_array(init))
        for inner in body.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(inner)
            copy.name = prefix + (inner.name or inner.op_type)
            copy.input[:] = [names.get(name, name) if name else "" for name in inner.input]
            copy.output[:] = [names.get(name, name) if name else "" for name in inner.output]
            new_nodes.append(copy)
        outputs = [names.get(value.name, value.name) for value in body.output]
        carried = outputs[1 : 1 + carried_count]
        for scan, name in zip(scans, outputs[1 + carried_count :]):
            scan.append(name)
    for final, outer in zip(node.output[:carried_count], carried):
        if final:
            new_nodes.append(helper.make_node("Identity", [outer], [final], name=f"{node.name}/{final}"))
    axis = _constant(new_nodes, f"{node.name}/axis0", np.array([0], np.int64))
    for final, pieces in zip(node.output[carried_count:], scans):
        if final:
            stacked = [f"{piece}/stacked" for piece in pieces]
            for piece, out in zip(pieces, stacked):
                new_nodes.append(helper.make_node("Unsqueeze", [piece, axis], [out], name=out))
            new_nodes.append(helper.make_node("Concat", stacked, [final], name=f"{node.name}/{final}", axis=0))
    position = next(i for i, n in enumerate(graph.node) if n.name == node.name)
    del graph.node[position]
    for offset, inner in enumerate(new_nodes):
        graph.node.insert(position + offset, inner)
    return tuple(inner.name for inner in new_nodes)


def _constant(nodes: list[onnx.NodeProto], name: str, value: np.ndarray) -> str:
    nodes.append(helper.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(value)))
    return name

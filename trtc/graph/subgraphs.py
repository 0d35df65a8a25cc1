"""Subgraphs (If branches, Loop and Scan bodies) and the outer-scope tensors they read."""

from __future__ import annotations

import onnx


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    return [g for a in node.attribute for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs)]


def _local_names(graph: onnx.GraphProto) -> set[str]:
    return (
        {v.name for v in graph.input} | {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    )


def outer_scope_reads(node: onnx.NodeProto) -> set[str]:
    """Tensors of the enclosing graph that `node`'s subgraphs (If branches, Loop bodies) read."""
    reads: set[str] = set()
    for graph in subgraphs(node):
        local = _local_names(graph)
        for inner in graph.node:
            names = set(inner.input) | outer_scope_reads(inner)
            reads |= {name for name in names if name and name not in local}
    return reads


def rename_outer_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Point every read of the outer tensor `old` inside `graph` (and nested subgraphs) at `new`."""
    if old in _local_names(graph):
        return  # shadowed: the subgraph defines its own tensor of that name
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        for subgraph in subgraphs(node):
            rename_outer_reads(subgraph, old, new)

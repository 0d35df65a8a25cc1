"""Which nodes compute on the values of the graph's inputs: TensorRT cannot evaluate those while
building, so a node among them that no kernel names still ran (fused into a kernel whose metadata
does not name it, or a view TensorRT elided); every other node is constant or shape arithmetic."""

from __future__ import annotations

import onnx

from trtc.graph.io import graph_inputs
from trtc.graph.subgraphs import outer_scope_reads

# Ops whose output depends on their input's shape alone, never on its values.
_SHAPE_ONLY = frozenset({"Shape", "Size"})


def value_dependent_nodes(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes whose outputs depend on the values of a graph input (nodes in graph order)."""
    live = {value.name for value in graph_inputs(model.graph)}
    found = set()
    for node in model.graph.node:
        if node.op_type in _SHAPE_ONLY and not node.domain:
            continue
        if live.intersection(node.input) or (node.attribute and live & outer_scope_reads(node)):
            found.add(node.name)
            live.update(name for name in node.output if name)
    return found

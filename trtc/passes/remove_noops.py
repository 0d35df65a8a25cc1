"""Remove nodes that compute nothing: Identity, Dropout (inference), a Cast to the type the
tensor already has, a Reshape to the shape it already has, a Transpose with the identity
permutation, and nodes whose results nobody uses.

A node whose output is a graph output stays (the output keeps its name and producer)."""

from __future__ import annotations

import onnx

from trtc.graph.graph_index import GraphIndex, apply_rewrites, attributes, rename_inputs
from trtc.graph.io import remove_dead_nodes
from trtc.graph.shapes import tensor_types
from trtc.passes.base import Change, PassContext


class RemoveNoOps:
    name = "remove-noops"
    description = "drop Identity, Dropout, no-op Cast/Reshape/Transpose and dead nodes"

    def run(self, model: onnx.ModelProto, context: PassContext) -> list[Change]:
        graph = model.graph
        index = GraphIndex(graph)
        types = None
        changes, removed, renames = [], [], {}
        for node in list(graph.node):
            if node.name in context.exclude or node.domain not in ("", "ai.onnx") or not node.input:
                continue
            if node.output[0] in index.graph_outputs or any(out in index.graph_outputs for out in node.output[1:]):
                continue
            if node.op_type == "Dropout" and len(node.output) > 1 and index.consumers.get(node.output[1]):
                continue  # the mask is used
            if node.op_type in ("Cast", "Reshape", "Transpose") and types is None:
                types = tensor_types(model)
            reason = _why_noop(node, index, types)
            if reason is None:
                continue
            removed.append(node.name)
            renames[node.output[0]] = node.input[0]
            changes.append(Change(self.name, "remove", (node.name,), (), reason))
        if removed:
            apply_rewrites(graph, [([name], []) for name in removed])
            rename_inputs(graph, renames)
        # Dead nodes go whatever `exclude` says: removing them cannot change any output.
        changes += [Change(self.name, "remove", (name,), (), "result unused") for name in remove_dead_nodes(graph)]
        return changes


def _why_noop(node: onnx.NodeProto, index: GraphIndex, types) -> str | None:
    if node.op_type == "Identity":
        return "Identity"
    if node.op_type == "Dropout":
        training = index.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if len(node.input) > 2 and node.input[2] and (training is None or bool(training)):
            return None  # training mode on, or not known to be off
        return "Dropout is the identity at inference"
    if node.op_type == "Cast":
        source = types.get(node.input[0])
        if source is not None and source.elem_type == attributes(node).get("to"):
            return "Cast to the type the tensor already has"
    if node.op_type == "Reshape":
        source, target = types.get(node.input[0]), index.constant(node.input[1])
        if (
            source is not None
            and source.static_shape
            and target is not None
            and tuple(int(d) for d in target) == source.static_shape
        ):
            return "Reshape to the shape the tensor already has"
    if node.op_type == "Transpose":
        perm = attributes(node).get("perm")
        if perm is not None and list(perm) == sorted(perm):
            return "Transpose with the identity permutation"
    return None

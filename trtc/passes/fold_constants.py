"""Constant folding: a node whose inputs are all constants becomes an initializer.

Not folded: nodes with subgraphs, random or custom-domain ops, Q/DQ nodes (TensorRT needs them to
choose INT8/FP8 kernels), and nodes whose result would be much larger than their inputs (an
Expand or Tile of a small constant would bloat the model file and TensorRT's memory)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from trtc.graph.graph_index import GraphIndex, apply_rewrites, drop_unused_initializers
from trtc.graph.io import subgraph_inputs
from trtc.passes.base import Change, PassContext

_NEVER = {
    "If",
    "Loop",
    "Scan",
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "QuantizeLinear",
    "DequantizeLinear",
    "Constant",
}
_GROWTH_LIMIT_BYTES = 1 << 20  # results may exceed their inputs by at most this much


class FoldConstants:
    name = "fold-constants"
    description = "evaluate nodes whose inputs are all constants"

    def run(self, model: onnx.ModelProto, context: PassContext) -> list[Change]:
        index = GraphIndex(model.graph)
        opset = {op.domain or "": op.version for op in model.opset_import}
        changes, removed = [], []
        for node in list(model.graph.node):
            if node.name in context.exclude or node.op_type in _NEVER or node.domain not in ("", "ai.onnx"):
                continue
            if not node.input or not all(index.is_constant(name) for name in node.input if name):
                continue  # decided by name: reading a weight copies it (a Conv's, for nothing)
            inputs = [index.constant(name) if name else None for name in node.input]
            if any(value is None for value, name in zip(inputs, node.input) if name):
                continue
            if any(out in index.graph_outputs for out in node.output):
                continue  # graph outputs must stay produced by the graph
            results = _evaluate(node, node.input, inputs, opset)
            if results is None:
                continue
            input_bytes = sum(v.nbytes for v in inputs if v is not None)
            if sum(r.nbytes for r in results) > input_bytes + _GROWTH_LIMIT_BYTES:
                continue
            removed.append(node.name)
            for name, value in zip(node.output, results):
                if name:
                    tensor = onnx.numpy_helper.from_array(np.asarray(value), name)
                    model.graph.initializer.append(tensor)
                    index.initializers[name] = tensor
            changes.append(Change(self.name, "fold", (node.name,), (), f"{node.op_type} evaluated at compile time"))
        if removed:
            apply_rewrites(model.graph, [([name], []) for name in removed])
            changes += self._drop_orphaned_constants(model)
            drop_unused_initializers(model.graph)
        return changes

    def _drop_orphaned_constants(self, model: onnx.ModelProto) -> list[Change]:
        """Constant nodes that only fed folded nodes now feed nothing."""
        read = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
        read |= {name for node in model.graph.node for name in subgraph_inputs(node)}
        orphans = [
            n.name for n in model.graph.node if n.op_type == "Constant" and not any(out in read for out in n.output)
        ]
        if orphans:
            apply_rewrites(model.graph, [([name], []) for name in orphans])
        return [Change(self.name, "remove", (name,), (), "Constant no longer read after folding") for name in orphans]


def _evaluate(node: onnx.NodeProto, names, values, opset: dict[str, int]) -> list[np.ndarray] | None:
    inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
        for n, v in zip(names, values)
        if n
    ]
    outputs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
    from onnx.reference import ReferenceEvaluator  # its import costs 50 ms; most models fold nothing

    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset.get("", 17))])
    try:
        return list(ReferenceEvaluator(model).run(None, {n: v for n, v in zip(names, values) if n}))
    except Exception:  # noqa: BLE001 - an op the reference evaluator lacks simply stays a node
        return None

"""Horizontal merging: sibling layers that read the same tensor with the same structure but
different weights become one wider layer followed by a Split (the design notes' YOLOv3 output
heads). Each sibling's output keeps its name, now produced by the Split, so graph outputs and
downstream nodes are untouched.

Merged: Conv with equal kernel, stride, pads, dilation, group 1 and auto_pad; MatMul with a 2-D
constant right operand; Gemm with equal transA/transB/alpha/beta. Weights must be constants of
one dtype, and no sibling may feed a pointwise op that TensorRT would fuse into its epilogue."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper

from trtc.graph.graph_index import GraphIndex, apply_rewrites, attributes, drop_unused_initializers
from trtc.passes.base import Change, PassContext


class MergeSiblings:
    name = "merge-siblings"
    description = "merge parallel Conv/MatMul/Gemm layers on one input into one wider layer + Split"

    def run(self, model: onnx.ModelProto, context: PassContext) -> list[Change]:
        graph = model.graph
        opset = next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), 17)
        changes, rewrites = [], []
        index = GraphIndex(graph)
        for tensor in list(index.consumers):
            groups: dict[tuple, list[onnx.NodeProto]] = defaultdict(list)
            for node in index.consumers[tensor]:
                key = _signature(node, tensor, index, context)
                if key is not None:
                    groups[key].append(node)
            for key, siblings in groups.items():
                if len(siblings) < 2:
                    continue
                merged, split = _merge(key[0], siblings, index, opset)
                rewrites.append(([n.name for n in siblings], [merged, split]))
                changes.append(
                    Change(
                        self.name,
                        "merge",
                        tuple(n.name for n in siblings),
                        (merged.name, split.name),
                        f"{len(siblings)} parallel {key[0]} layers as one {merged.op_type} of "
                        f"{sum(_width(key[0], n, index) for n in siblings)} outputs + Split",
                    )
                )
        if rewrites:
            apply_rewrites(graph, rewrites)
            drop_unused_initializers(graph)
        return changes


# Pointwise ops TensorRT fuses into a convolution's or GEMM's epilogue. A layer followed by one
# keeps that fusion only when it stays a layer of its own: behind a merge's Split it becomes a
# separate kernel (measured on a YOLOX-style detector: 94 -> 102 kernels, 128 -> 145 MB of
# memory traffic when its CSP branches were merged).
EPILOGUE_OPS = {
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Sigmoid",
    "Tanh",
    "Clip",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Selu",
    "Softplus",
    "Mish",
    "Gelu",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "BatchNormalization",
}


def _signature(node: onnx.NodeProto, tensor: str, index: GraphIndex, context: PassContext) -> tuple | None:
    """What must be equal for two layers to merge; None when this node cannot merge at all."""
    if node.domain or node.name in context.exclude or node.input[0] != tensor or len(node.input) < 2:
        return None
    if any(user.op_type in EPILOGUE_OPS for user in index.consumers.get(node.output[0], [])):
        return None
    weight = index.constant(node.input[1])
    has_bias = len(node.input) > 2 and node.input[2]
    if (
        weight is None
        or (has_bias and index.constant(node.input[2]) is None)
        or not np.issubdtype(weight.dtype, np.floating)
    ):
        return None
    attrs = attributes(node)
    if node.op_type == "Conv":
        if attrs.get("group", 1) != 1:
            return None
        layout = tuple(
            sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attrs.items() if k != "kernel_shape")
        )
        return ("Conv", weight.shape[1:], str(weight.dtype), layout)
    if node.op_type == "MatMul" and weight.ndim == 2:
        return ("MatMul", weight.shape[0], str(weight.dtype))
    if node.op_type == "Gemm" and weight.ndim == 2:
        inner = weight.shape[1] if attrs.get("transB", 0) else weight.shape[0]
        bias = index.constant(node.input[2]) if has_bias else None
        if bias is not None and bias.ndim > 1 and bias.shape[0] != 1:
            return None  # a per-row bias cannot be split by columns
        return (
            "Gemm",
            inner,
            str(weight.dtype),
            attrs.get("transA", 0),
            attrs.get("transB", 0),
            attrs.get("alpha", 1.0),
            attrs.get("beta", 1.0),
        )
    return None


def _width(kind: str, node: onnx.NodeProto, index: GraphIndex) -> int:
    weight = index.constant(node.input[1])
    if kind == "Gemm" and not attributes(node).get("transB", 0):
        return weight.shape[1]
    return weight.shape[1] if kind == "MatMul" else weight.shape[0]


def _merge(
    kind: str, siblings: list[onnx.NodeProto], index: GraphIndex, opset: int
) -> tuple[onnx.NodeProto, onnx.NodeProto]:
    first = siblings[0]
    attrs = attributes(first)
    weights = [index.constant(n.input[1]) for n in siblings]
    widths = [_width(kind, n, index) for n in siblings]
    weight_axis = 1 if kind == "MatMul" or (kind == "Gemm" and not attrs.get("transB", 0)) else 0
    merged_name = "+".join(n.name for n in siblings)
    inputs = [first.input[0], index.add_initializer(f"{merged_name}.weight", np.concatenate(weights, axis=weight_axis))]
    biases = [index.constant(n.input[2]) if len(n.input) > 2 and n.input[2] else None for n in siblings]
    if any(b is not None for b in biases):
        parts = [
            np.broadcast_to(b.reshape(-1), (w,)) if b is not None else np.zeros(w, weights[0].dtype)
            for b, w in zip(biases, widths)
        ]
        inputs.append(index.add_initializer(f"{merged_name}.bias", np.concatenate(parts).astype(weights[0].dtype)))
    wide = index.unique(f"{merged_name}.out")
    merged = helper.make_node(kind, inputs, [wide], name=merged_name, **attrs)
    axis = -1 if kind == "MatMul" else 1
    outputs = [n.output[0] for n in siblings]
    if opset >= 13:
        sizes = index.add_initializer(f"{merged_name}.split", np.array(widths, np.int64))
        split = helper.make_node("Split", [wide, sizes], outputs, name=f"{merged_name}/split", axis=axis)
    else:
        split = helper.make_node("Split", [wide], outputs, name=f"{merged_name}/split", axis=axis, split=widths)
    return merged, split

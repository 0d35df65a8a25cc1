"""FLOPs and memory traffic (MAC) per ONNX node, at concrete input shapes.

Conventions (from the design notes): FLOPs count one per multiply-accumulate, so a 1x1
convolution with c1 input and c2 output channels on an h x w map costs c1*h*w*c2; MAC is the
bytes a node reads and writes, weights included: (h*w*c1 + c1*c2 + h*w*c2) elements times the
element size for that convolution. Bias additions are not counted as FLOPs. Element-wise ops
cost one FLOP per output element; Softmax three (exp, sum, divide); normalizations five. Views
(Reshape, Flatten, Squeeze, Unsqueeze, Identity) cost nothing; copies (Concat, Split, Slice,
Transpose, Gather, Pad, Tile, Expand) cost their bytes but no FLOPs. A node whose shapes
inference cannot tell is marked unknown and counted as zero, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import onnx

from trtc.graph.shapes import TensorType, tensor_types

VIEWS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
COPIES = {"Concat", "Split", "Slice", "Transpose", "Gather", "GatherElements", "GatherND", "Pad", "Tile", "Expand",
          "DepthToSpace", "SpaceToDepth", "Cast", "ScatterND", "ScatterElements"}
BUILD_TIME = {"Constant", "Shape", "Size", "ConstantOfShape", "Range"}  # evaluated once, not per inference
PER_ELEMENT = {"Softmax": 3, "LogSoftmax": 3, "BatchNormalization": 2, "LayerNormalization": 5,
               "InstanceNormalization": 5, "GroupNormalization": 5, "Gelu": 8, "Erf": 4}
REDUCTIONS = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceL1",
              "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin", "GlobalAveragePool", "GlobalMaxPool"}


@dataclass(frozen=True)
class NodeCost:
    op_type: str
    flops: int
    bytes_read: int
    bytes_written: int
    known: bool = True

    @property
    def mac_bytes(self) -> int:
        return self.bytes_read + self.bytes_written


def node_costs(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, NodeCost]:
    """Cost of every node, keyed by node name, with graph inputs fixed to `input_shapes`."""
    types = tensor_types(model, input_shapes)
    return {node.name: cost_of(node, types) for node in model.graph.node}


def cost_of(node: onnx.NodeProto, types: dict[str, TensorType]) -> NodeCost:
    if node.op_type in BUILD_TIME:
        return NodeCost(node.op_type, 0, 0, 0)
    ins = [_elements(types.get(name)) if name else 0 for name in node.input]
    outs = [_elements(types.get(name)) if name else 0 for name in node.output]
    if any(n is None for n in ins + outs):
        return NodeCost(node.op_type, 0, 0, 0, known=False)
    read = sum(n * _itemsize(types.get(name)) for n, name in zip(ins, node.input) if name)
    written = sum(n * _itemsize(types.get(name)) for n, name in zip(outs, node.output) if name)
    if node.op_type in VIEWS:
        return NodeCost(node.op_type, 0, 0, 0)
    flops = _flops(node, types, ins, outs)
    if flops is None:
        return NodeCost(node.op_type, 0, read, written, known=False)
    return NodeCost(node.op_type, flops, read, written)


def _flops(node: onnx.NodeProto, types: dict[str, TensorType], ins: list[int], outs: list[int]) -> int | None:
    op = node.op_type
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if op == "Conv":
        weight = types[node.input[1]].static_shape
        return outs[0] * prod(weight[1:])  # each output element: (c_in / groups) * kernel MACs
    if op == "ConvTranspose":
        weight = types[node.input[1]].static_shape
        return ins[0] * prod(weight[1:])  # each input element scatters into (c_out / groups) * kernel
    if op in ("MatMul", "MatMulInteger"):
        left = types[node.input[0]].static_shape
        return outs[0] * left[-1]
    if op == "Gemm":
        left = types[node.input[0]].static_shape
        return outs[0] * (left[0] if attrs.get("transA", 0) else left[-1])
    if op in ("MaxPool", "AveragePool", "LpPool"):
        return outs[0] * prod(attrs.get("kernel_shape", [1]))
    if op in REDUCTIONS:
        return ins[0]
    if op in PER_ELEMENT:
        return PER_ELEMENT[op] * outs[0]
    if op in COPIES or op in ("QuantizeLinear", "DequantizeLinear"):
        return 0 if op in COPIES else outs[0]
    if op in ("If", "Loop", "Scan") or node.domain not in ("", "ai.onnx"):
        return None
    return outs[0]  # element-wise and activations: one per output element


def _elements(tensor: TensorType | None) -> int | None:
    shape = tensor.static_shape if tensor is not None else None
    return prod(shape) if shape is not None else None


def _itemsize(tensor: TensorType | None) -> int:
    return tensor.itemsize if tensor is not None else 4


def totals(costs: dict[str, NodeCost]) -> dict:
    return {
        "flops": sum(c.flops for c in costs.values()),
        "mac_bytes": sum(c.mac_bytes for c in costs.values()),
        "nodes": len(costs),
        "unknown_nodes": sorted(name for name, c in costs.items() if not c.known),
    }

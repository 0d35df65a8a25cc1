"""FLOPs and memory traffic (MAC) per ONNX node, at concrete input shapes.

Conventions (from the design notes): FLOPs count one per multiply-accumulate, so a 1x1
convolution with c1 input and c2 output channels on an h x w map costs c1*h*w*c2; MAC is the
bytes a node reads and writes, weights included: (h*w*c1 + c1*c2 + h*w*c2) elements times the
element size for that convolution. Bias additions are not counted as FLOPs. Element-wise ops
cost one FLOP per output element; Softmax three (exp, sum, divide); normalizations five. Views
(Reshape, Flatten, Squeeze, Unsqueeze, Identity) cost nothing; copies (Concat, Split, Slice,
Transpose, Gather, Pad, Tile, Expand) cost their bytes but no FLOPs; Gather and Slice read only
the elements they copy, not the whole source tensor (an embedding table is not read in full).
LSTM/GRU/RNN: their gate matmuls (steps x batch x (W + R elements)), not the gates' element-wise
math. Resize: nearest copies (0 FLOPs); linear costs 2^k - 1 multiply-adds per output element and
cubic 4 * (4^k - 1) / 3, for k resized axes. Einsum: the product of all its index sizes.
A node whose shapes inference cannot tell, or whose op has no FLOP formula here (LSTM, TopK,
NonMaxSuppression, custom domains, ...), is marked unknown with the reason: its FLOPs count as
zero, never guessed (its bytes still count when its shapes are known).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import onnx

from trtc.graph.shapes import TensorType, tensor_types

VIEWS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
COPIES = {
    "Concat",
    "Split",
    "Slice",
    "Transpose",
    "Gather",
    "GatherElements",
    "GatherND",
    "Pad",
    "Tile",
    "Expand",
    "DepthToSpace",
    "SpaceToDepth",
    "Cast",
    "CastLike",
    "ScatterND",
    "ScatterElements",
    "Trilu",
    "ReverseSequence",
}
SELECTIVE_READS = {"Gather", "GatherElements", "GatherND", "Slice"}  # read only what they copy from input 0
# One FLOP per output element.
ELEMENTWISE = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Mod",
    "Neg",
    "Abs",
    "Reciprocal",
    "Sqrt",
    "Exp",
    "Log",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Tanh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Celu",
    "ThresholdedRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Softplus",
    "Softsign",
    "Mish",
    "Shrink",
    "Clip",
    "Where",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "Equal",
    "Greater",
    "GreaterOrEqual",
    "Less",
    "LessOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "IsNaN",
    "IsInf",
    "BitShift",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
    "BitwiseNot",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
}
BUILD_TIME = {"Constant", "Shape", "Size", "ConstantOfShape", "Range"}  # evaluated once, not per inference
PER_ELEMENT = {
    "Softmax": 3,
    "LogSoftmax": 3,
    "BatchNormalization": 2,
    "LayerNormalization": 5,
    "InstanceNormalization": 5,
    "GroupNormalization": 5,
    "Gelu": 8,
    "Erf": 4,
}
REDUCTIONS = {
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL2",
    "ReduceL1",
    "ReduceSumSquare",
    "ReduceLogSumExp",
    "ArgMax",
    "ArgMin",
    "GlobalAveragePool",
    "GlobalMaxPool",
}


@dataclass(frozen=True)
class NodeCost:
    op_type: str
    flops: int
    bytes_read: int
    bytes_written: int
    known: bool = True
    reason: str = ""  # why it is unknown: shapes inference could not tell, or no FLOP formula for the op

    @property
    def mac_bytes(self) -> int:
        return self.bytes_read + self.bytes_written


def node_costs(
    model: onnx.ModelProto,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    types: dict[str, TensorType] | None = None,
) -> dict[str, NodeCost]:
    """Cost of every node, keyed by node name, with graph inputs fixed to `input_shapes` (or
    `types` already inferred by `tensor_types` at those shapes)."""
    types = types if types is not None else tensor_types(model, input_shapes)
    return {node.name: cost_of(node, types) for node in model.graph.node}


def tensor_elements(types: dict[str, TensorType]) -> dict[str, int]:
    """Element count of every tensor whose shape is known."""
    return {name: prod(t.static_shape) for name, t in types.items() if t.static_shape is not None}


def cost_of(node: onnx.NodeProto, types: dict[str, TensorType]) -> NodeCost:
    try:
        return _cost_of(node, types)
    except (TypeError, ValueError):  # a shape polynomial where the formula compares or divides
        return NodeCost(
            node.op_type, 0, 0, 0, known=False, reason="depends on a dynamic dimension in a way trtc cannot express"
        )


def _cost_of(node: onnx.NodeProto, types: dict[str, TensorType]) -> NodeCost:
    if node.op_type in BUILD_TIME:
        return NodeCost(node.op_type, 0, 0, 0)
    ins = [_elements(types.get(name)) if name else 0 for name in node.input]
    outs = [_elements(types.get(name)) if name else 0 for name in node.output]
    if any(n is None for n in ins + outs):
        return NodeCost(node.op_type, 0, 0, 0, known=False, reason="shape unknown")
    if node.op_type in SELECTIVE_READS:
        ins[0] = outs[0]
    read = sum(n * _itemsize(types.get(name)) for n, name in zip(ins, node.input) if name)
    written = sum(n * _itemsize(types.get(name)) for n, name in zip(outs, node.output) if name)
    if node.op_type in VIEWS:
        return NodeCost(node.op_type, 0, 0, 0)
    flops = _flops(node, types, ins, outs)
    if flops is None:
        return NodeCost(node.op_type, 0, read, written, known=False, reason=f"no FLOP formula for {node.op_type}")
    return NodeCost(node.op_type, flops, read, written)


def _flops(node: onnx.NodeProto, types: dict[str, TensorType], ins: list[int], outs: list[int]) -> int | None:
    op = node.op_type
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        weight = types[node.input[3 if op == "QLinearConv" else 1]].static_shape
        return outs[0] * prod(weight[1:])  # each output element: (c_in / groups) * kernel MACs
    if op == "ConvTranspose":
        weight = types[node.input[1]].static_shape
        return ins[0] * prod(weight[1:])  # each input element scatters into (c_out / groups) * kernel
    if op in ("LSTM", "GRU", "RNN"):  # the gate matmuls: every step multiplies x by W and h by R
        steps_times_batch = prod(types[node.input[0]].static_shape[:2])
        return steps_times_batch * (prod(types[node.input[1]].static_shape) + prod(types[node.input[2]].static_shape))
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
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
    if node.domain not in ("", "ai.onnx"):
        return None
    if op in COPIES:
        return 0
    if op in ELEMENTWISE:
        return outs[0]
    if op == "Resize":
        return _resize_flops(attrs, types[node.input[0]].static_shape, types[node.output[0]].static_shape, outs[0])
    if op == "Einsum":
        return _einsum_flops(attrs["equation"], [types[name].static_shape for name in node.input])
    return None


def _resize_flops(attrs: dict, before: tuple[int, ...], after: tuple[int, ...], elements: int) -> int:
    mode = attrs.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    resized = sum(1 for a, b in zip(before, after) if a != b)
    if mode == "linear":
        return elements * (2**resized - 1)
    if mode == "cubic":
        return elements * 4 * (4**resized - 1) // 3
    return 0


def _einsum_flops(equation: str | bytes, shapes: list[tuple[int, ...]]) -> int | None:
    equation = equation.decode() if isinstance(equation, bytes) else equation
    terms = equation.replace(" ", "").split("->")[0].split(",")
    if len(terms) != len(shapes) or any("..." in term for term in terms):
        return None  # broadcast ellipses: leave unknown rather than guess
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        if len(term) != len(shape):
            return None
        for letter, size in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return prod(sizes.values())


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

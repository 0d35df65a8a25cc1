"""Shapes that ONNX's data propagation leaves unknown at concrete input shapes.

onnx follows shape arithmetic through Slice only from opset 13 (and other ops from other
opsets), so an opset 11/12 export (Paddle's) loses every shape after
`Reshape(x, Concat(Slice(Shape(x)), -1))`: a whole transformer's MatMuls had no FLOPs. Here the
small tensors such a node reads are computed, from the shapes inference did find and from
constants, by onnx's reference implementation one node at a time (only the chain that feeds the
stuck node), then handed to inference again as constants, round after round."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from trtc.graph.graph_index import del_and_extend
from trtc.graph.subgraphs import subgraphs

_MAX_ELEMENTS = 64  # shape arithmetic, never activations
_MAX_ROUNDS = 8  # each round can reveal shapes that the next round's arithmetic needs
_MAX_DEPTH = 64


def resolve_shape_values(
    light: onnx.ModelProto, inferred: onnx.ModelProto, infer: Callable[[onnx.ModelProto], onnx.ModelProto]
) -> onnx.ModelProto:
    """`inferred` (= infer(light)) with the shapes that computed shape tensors decide filled in."""
    for round_ in range(_MAX_ROUNDS):
        shapes = _known_shapes(inferred)
        stuck = [n for n in light.graph.node if any(o and o not in shapes for o in n.output) and not subgraphs(n)]
        values = _Values(light, shapes)
        found = {
            name: array
            for node in stuck
            for name in node.input
            if name and name not in values.constants and (array := values.of(name)) is not None
        }
        if not found:
            return inferred
        light = _with_constants(light, found, f"::value{round_}")
        inferred = infer(light)
    return inferred


def _known_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tensor = value.type.tensor_type
        if value.type.HasField("tensor_type") and tensor.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
            if None not in dims:
                shapes[value.name] = dims
    return shapes


class _Values:
    """Values of small tensors, computed on demand from constants and known shapes."""

    def __init__(self, model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]):
        self.shapes = shapes
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        self.producers = {out: node for node in model.graph.node for out in node.output if out}
        # Read when asked for: a model has hundreds of small initializers (BatchNorm's), few feed shapes.
        self.constants: dict[str, onnx.TensorProto] = {}
        for init in model.graph.initializer:
            if init.data_location != onnx.TensorProto.EXTERNAL and _small(init.dims):
                self.constants[init.name] = init
        for node in model.graph.node:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if node.op_type == "Constant" and not node.domain and value is not None and _small(value.dims):
                self.constants[node.output[0]] = value
        self.values: dict[str, np.ndarray | None] = {}

    def of(self, name: str, depth: int = 0) -> np.ndarray | None:
        if name in self.values:
            return self.values[name]
        if name in self.constants:
            self.values[name] = numpy_helper.to_array(self.constants[name])
            return self.values[name]
        self.values[name] = None  # also guards against cycles
        node = self.producers.get(name)
        if node is None or depth > _MAX_DEPTH or node.domain not in ("", "ai.onnx") or subgraphs(node):
            return None
        try:
            outputs = self._evaluate(node, depth)
        except Exception:  # noqa: BLE001 - the reference implementation refuses: the shape stays unknown
            return None
        for output, array in zip(node.output, outputs):
            if output and array is not None and array.size <= _MAX_ELEMENTS:
                self.values[output] = np.asarray(array)
        return self.values.get(name)

    def _evaluate(self, node: onnx.NodeProto, depth: int) -> list[np.ndarray | None]:
        if node.op_type in ("Shape", "Size"):
            dims = self.shapes.get(node.input[0])
            if dims is None:
                return []
            if node.op_type == "Size":
                return [np.array(int(np.prod(dims)), np.int64)]
            attributes = {a.name: a.i for a in node.attribute}
            return [np.array(dims[attributes.get("start", 0) : attributes.get("end", len(dims))], np.int64)]
        feeds = {}
        # Inputs that are no constants first: an activation ends the walk before any weight is read.
        for name in sorted((n for n in node.input if n), key=lambda n: n in self.constants):
            feeds[name] = self.of(name, depth + 1)
            if feeds[name] is None:
                return []
        from onnx.reference import ReferenceEvaluator  # only models that need it pay for the import

        return ReferenceEvaluator(node, opsets=self.opsets).run(None, feeds)


def _small(dims) -> bool:
    return math.prod(dims) <= _MAX_ELEMENTS


def _with_constants(model: onnx.ModelProto, values: dict[str, np.ndarray], suffix: str) -> onnx.ModelProto:
    """A copy of `model` whose nodes read `values` from new Constant nodes instead of computing them."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    renamed = {name: name + suffix for name in values}
    for node in copy.graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
    nodes = [
        helper.make_node("Constant", [], [renamed[name]], value=numpy_helper.from_array(array, renamed[name]))
        for name, array in values.items()
    ]
    del_and_extend(copy.graph.node, [*nodes, *copy.graph.node])
    return copy

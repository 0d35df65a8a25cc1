"""A read-mostly index over an ONNX graph for passes: who produces and who consumes each tensor,
which tensors are constants, and small edits that keep the index honest."""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np
import onnx
from onnx import numpy_helper

from trtc.graph.io import graph_inputs


class GraphIndex:
    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.initializers = {init.name: init for init in graph.initializer}
        # Real inputs only: old exporters (IR < 4) list every initializer as an input too, and
        # TensorRT and the rest of trtc treat those as weights.
        self.graph_inputs = {value.name for value in graph_inputs(graph)}
        self.graph_outputs = {value.name for value in graph.output}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.output:
                if name:
                    self.producer[name] = node
            for name in _all_inputs(node):
                self.consumers[name].append(node)
        # Names in use, kept up to date as names are handed out (rebuilt per call, naming every
        # new weight of a 300-layer model cost a quadratic second).
        self._taken = set(self.initializers) | set(self.producer) | {value.name for value in graph.input}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of a tensor that is an initializer or a Constant node's output."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and not node.domain:
            return constant_value(node)
        return None

    def is_constant(self, name: str) -> bool:
        """Whether `constant(name)` has a value, without reading it."""
        node = self.producer.get(name)
        return name in self.initializers or (node is not None and node.op_type == "Constant" and not node.domain)

    def only_consumer(self, name: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.graph_outputs else None

    def add_initializer(self, name: str, value: np.ndarray) -> str:
        name = self.unique(name)
        value = np.asarray(value)
        value = value if value.flags.c_contiguous else value.copy(order="C")  # keeps 0-d scalars 0-d
        if (
            value.dtype.kind in "biuf" and value.dtype.isnative and sys.byteorder == "little"
        ):  # raw data is little-endian
            # Filled in place: appending a finished TensorProto copies its data once more.
            tensor = self.graph.initializer.add()
            tensor.name, tensor.data_type = name, onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
            tensor.dims.extend(value.shape)
            tensor.raw_data = value.tobytes()
        else:
            self.graph.initializer.append(numpy_helper.from_array(value, name))
            tensor = self.graph.initializer[-1]
        self.initializers[name] = tensor
        return name

    def unique(self, name: str) -> str:
        """`name`, or `name__2`, `name__3`, ...: the first that names nothing in the graph and was
        not handed out before."""
        candidate, suffix = name, 1
        while candidate in self._taken:
            suffix += 1
            candidate = f"{name}__{suffix}"
        self._taken.add(candidate)
        return candidate


def attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def apply_rewrites(graph: onnx.GraphProto, rewrites: list[tuple[list[str], list[onnx.NodeProto]]]) -> None:
    """Replace many groups of nodes (by name) at once, in one pass over the node list: each group's
    new nodes stand where its first old node stood; the rest of the group is dropped. Planning all
    rewrites on one index and applying them together keeps passes linear on large graphs."""
    position = {node.name: i for i, node in enumerate(graph.node)}
    first: dict[str, list[onnx.NodeProto]] = {}
    dropped: set[str] = set()
    for old_names, new_nodes in rewrites:
        ordered = sorted(old_names, key=position.__getitem__)
        first[ordered[0]] = new_nodes
        dropped.update(ordered[1:])
    rebuilt: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.name in first:
            rebuilt.extend(first[node.name])
        elif node.name not in dropped:
            rebuilt.append(node)
    del_and_extend(graph.node, rebuilt)


def del_and_extend(field, items: list) -> None:
    copies = [_detached(item) for item in items]
    del field[:]
    field.extend(copies)


def _detached(message):
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def rename_inputs(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    """Every use of a tensor in `renames` (subgraphs included) reads its replacement instead;
    chains (a -> b -> c) resolve to their end."""

    def final(name: str) -> str:
        seen = set()
        while name in renames and name not in seen:
            seen.add(name)
            name = renames[name]
        return name

    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = final(name)
        for attribute in node.attribute:
            for body in _bodies(attribute):
                rename_inputs(body, {old: final(old) for old in renames})


def drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Delete initializers nothing reads, in place (no copy of the ones that stay)."""
    used = {name for node in graph.node for name in _all_inputs(node)} | {v.name for v in graph.output}
    for index in range(len(graph.initializer) - 1, -1, -1):
        if graph.initializer[index].name not in used:
            del graph.initializer[index]


def _all_inputs(node: onnx.NodeProto) -> set[str]:
    names = {name for name in node.input if name}
    for attribute in node.attribute:
        for body in _bodies(attribute):
            for inner in body.node:
                names |= _all_inputs(inner)
    return names


def _bodies(attribute: onnx.AttributeProto) -> list[onnx.GraphProto]:
    if attribute.type == onnx.AttributeProto.GRAPH:
        return [attribute.g]
    if attribute.type == onnx.AttributeProto.GRAPHS:
        return list(attribute.graphs)
    return []


# Constant's attribute forms (opset 12+ added the scalar and list ones exporters favour).
_CONSTANT_DTYPES = {
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
}


def constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The value a Constant node produces; None for sparse and string constants (left alone)."""
    for attribute in node.attribute:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
        if attribute.name in _CONSTANT_DTYPES:
            return np.asarray(onnx.helper.get_attribute_value(attribute), dtype=_CONSTANT_DTYPES[attribute.name])
    return None

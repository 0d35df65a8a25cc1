"""A read-mostly index over an ONNX graph for passes: who produces and who consumes each tensor,
which tensors are constants, and small edits that keep the index honest."""

from __future__ import annotations

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

    def constant(self, name: str) -> np.ndarray | None:
        """The value of a tensor that is an initializer or a Constant node's output."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and not node.domain:
            return constant_value(node)
        return None

    def only_consumer(self, name: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.graph_outputs else None

    def add_initializer(self, name: str, value: np.ndarray) -> str:
        name = self.unique(name)
        value = np.asarray(value)
        tensor = numpy_helper.from_array(
            value if value.flags.c_contiguous else value.copy(order="C"), name
        )  # keeps 0-d scalars 0-d
        self.graph.initializer.append(tensor)
        self.initializers[name] = tensor
        return name

    def unique(self, name: str) -> str:
        taken = set(self.initializers) | set(self.producer) | {value.name for value in self.graph.input}
        candidate, suffix = name, 1
        while candidate in taken:
            suffix += 1
            candidate = f"{name}__{suffix}"
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

"""A read-mostly index over an ONNX graph for passes: who produces and who consumes each tensor,
which tensors are constants, and small edits that keep the index honest."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import numpy_helper


class GraphIndex:
    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.initializers = {init.name: init for init in graph.initializer}
        self.graph_inputs = {value.name for value in graph.input}
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
        if name in self.initializers and name not in self.graph_inputs:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and not node.domain:
            for attribute in node.attribute:
                if attribute.name == "value":
                    return numpy_helper.to_array(attribute.t)
        return None

    def only_consumer(self, name: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.graph_outputs else None

    def add_initializer(self, name: str, value: np.ndarray) -> str:
        name = self.unique(name)
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
        self.graph.initializer.append(tensor)
        self.initializers[name] = tensor
        return name

    def unique(self, name: str) -> str:
        taken = set(self.initializers) | set(self.producer) | self.graph_inputs
        candidate, suffix = name, 1
        while candidate in taken:
            suffix += 1
            candidate = f"{name}__{suffix}"
        return candidate


def attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def replace_node(graph: onnx.GraphProto, old: list[onnx.NodeProto], new: list[onnx.NodeProto]) -> None:
    """Put `new` where the first of `old` stood and drop the rest, keeping topological order."""
    position = min(list(graph.node).index(node) for node in old)
    for node in old:
        graph.node.remove(node)
    for offset, node in enumerate(new):
        graph.node.insert(position + offset, node)


def rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every use of tensor `old` (subgraphs included) reads `new` instead."""
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name == old:
                node.input[index] = new
        for attribute in node.attribute:
            for body in _bodies(attribute):
                rename_input(body, old, new)


def drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in _all_inputs(node)} | {v.name for v in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


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

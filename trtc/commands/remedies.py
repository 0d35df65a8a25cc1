"""Known remedies for a failed build, found in the graph handed to TensorRT: control flow whose
condition depends on an input (pin it), and onnxruntime-only quantized ops (quantize in trtc)."""

from __future__ import annotations

import onnx

_MAX_CONTROL_HINTS = 2
_ORT_QUANTIZED = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}


def remedies(model: onnx.ModelProto) -> list[str]:
    graph = model.graph
    hints = []
    quantized = sorted(
        {
            f"{n.op_type}" + (f" ({n.domain})" if n.domain else "")
            for n in graph.node
            if n.op_type in _ORT_QUANTIZED or n.domain == "com.microsoft"
        }
    )
    if quantized:
        hints.append(
            f"hint: {', '.join(quantized)} run only in onnxruntime; export the float model and let trtc "
            "quantize it (precision: {mode: int8})"
        )
    control = _control_flow_hints(graph)
    if len(control) > _MAX_CONTROL_HINTS:  # one pin usually resolves them all: keep the message short
        control = control[:_MAX_CONTROL_HINTS] + [
            f"hint: {len(control) - _MAX_CONTROL_HINTS} more If/Loop nodes depend on inputs"
        ]
    return hints + control


def _control_flow_hints(graph: onnx.GraphProto) -> list[str]:
    hints = []
    producers = {out: node for node in graph.node for out in node.output}
    inputs = {value.name for value in graph.input}
    for node in graph.node:
        if node.op_type in ("If", "Loop"):
            condition = node.input[0] if node.op_type == "If" else (node.input[1] if len(node.input) > 1 else "")
            values, shapes = _input_ancestors(condition, producers, inputs) if condition else (set(), set())
            if values:
                sources = sorted(values)
                hints.append(
                    f"hint: {node.op_type} '{node.name}' depends on input(s) {', '.join(sources)}; pin them "
                    f"if they are fixed in deployment: inputs: {{{sources[0]}: {{value: ...}}}}"
                )
            elif shapes:
                sources = sorted(shapes)
                hints.append(
                    f"hint: {node.op_type} '{node.name}' depends on the shape of {', '.join(sources)}; a fixed "
                    f"shape resolves it at build time: inputs: {{{sources[0]}: {{shape: [...]}}}}"
                )
    return hints


def _input_ancestors(tensor: str, producers: dict[str, onnx.NodeProto], inputs: set[str]) -> tuple[set[str], set[str]]:
    """Inputs whose values reach `tensor`, and inputs that reach it only through their shape."""
    values, shapes, seen, stack = set(), set(), set(), [(tensor, False)]
    while stack:
        name, through_shape = stack.pop()
        if (name, through_shape) in seen:
            continue
        seen.add((name, through_shape))
        if name in inputs:
            (shapes if through_shape else values).add(name)
        node = producers.get(name)
        if node is not None:
            stack.extend((i, through_shape or node.op_type == "Shape") for i in node.input if i)
    return values, shapes

"""FP16 / BF16 autocast of an FP32 ONNX graph. TensorRT 11 and TensorRT-RTX are strongly typed, so
the graph alone decides which kernels run in reduced precision.

A node is converted when its op is in `CONVERTIBLE` and nothing keeps it in FP32:
- `precision.keep_fp32` names it (a glob on the node name or on its op type);
- its op is in `KEEP_FP32_OPS`: exponentials, powers and reciprocals (overflow), reductions that
  sum many values (overflow, lost low bits) and normalizations (variance of small differences);
- (FP16) reference runs on every sample the precision step has (magnitudes.py) saw its output
  exceed `MAGNITUDE_LIMIT` in magnitude (FP16 tops out at 65504; headroom for the next op) or one
  of its inputs exceed FP16's range (the Cast in front of it would make Inf), or one of its
  weights overflows FP16 or would mostly flush to zero. BF16 has FP32's range, so only the first
  two rules apply to it.
A DequantizeLinear whose readers all stay FP32 stays FP32 too, so a quantized layer kept in FP32
still reads its DequantizeLinear directly (the pattern TensorRT fuses into an INT8 kernel).
Every other op, and every op not listed as convertible, stays FP32. Casts go only where a tensor
crosses between precisions, one per tensor and direction; Resize scales and ROI always stay FP32.
With `keep_io_types` the graph inputs and outputs keep their FP32 types.

`emulate=True` builds the FP32 model that rounds the same tensors through the reduced type
(Cast there and back): how FP16 and BF16 accuracy is measured, since onnxruntime's CPU kernels
lack BF16 and run FP16 ops in FP32 (dropping the graph's Casts around them).
Subgraphs (If/Loop bodies) stay FP32; a converted tensor they read reaches them through a Cast.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtc.graph.graph_index import constant_value
from trtc.graph.shapes import tensor_types
from trtc.graph.subgraphs import outer_scope_reads, rename_outer_reads, subgraphs
from trtc.precision.op_rules import CONVERTIBLE, KEEP_FP32_OPS

FP32_INPUTS = {"Resize": {1, 2}, "Upsample": {1}}  # scales and ROI
MAGNITUDE_LIMIT = 512.0
FP16_MAX, FP16_TINY = 65504.0, 2.0**-24
LOW = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}


@dataclass
class AutocastResult:
    model: onnx.ModelProto
    converted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # node -> why it stays FP32
    casts: int = 0

    def section(self, mode: str) -> dict:
        return {
            "mode": mode,
            "converted_nodes": len(self.converted),
            "kept_fp32": self.kept,
            "casts_inserted": self.casts,
        }


def autocast(
    model: onnx.ModelProto,
    mode: str,
    keep_fp32: tuple[str, ...] = (),
    keep_io_types: bool = True,
    magnitudes: dict[str, float] | None = None,
    emulate: bool = False,
) -> AutocastResult:
    """Convert a copy of `model`; `magnitudes` maps tensor names to max |x| in reference runs."""
    result = AutocastResult(onnx.ModelProto())
    result.model.CopyFrom(model)
    graph = result.model.graph
    _constants_as_initializers(graph)
    low = LOW[mode]
    types = tensor_types(model)
    is_float = {name for name, t in types.items() if t.elem_type == TensorProto.FLOAT}
    initializers = {init.name: init for init in graph.initializer}
    reasons = {
        node.name: _keep_reason(node, mode, keep_fp32, magnitudes or {}, initializers, is_float) for node in graph.node
    }
    _dequantize_like_readers(graph, reasons)
    for node in graph.node:
        reason = reasons[node.name]
        if reason is None:
            result.converted.append(node.name)
        elif any(n in is_float for n in [*node.input, *node.output]):
            result.kept[node.name] = reason
    converted = set(result.converted)
    low_tensors = {out for node in graph.node if node.name in converted for out in node.output if out in is_float}
    input_names = {value.name for value in graph.input} - set(initializers)
    if not keep_io_types:
        low_tensors |= input_names & is_float
    elif emulate:  # the real graph casts these inputs down in front of the converted nodes
        low_tensors |= {
            name
            for node in graph.node
            if node.name in converted
            for i, name in enumerate(node.input)
            if name in input_names and name in is_float and i not in FP32_INPUTS.get(node.op_type, set())
        }
    output_names = {value.name for value in graph.output}
    rewriter = _Rewriter(graph, low, emulate)
    if emulate:
        rewriter.round_trip(
            sorted(low_tensors), converted_initializers=_initializers_feeding(graph, converted, initializers, is_float)
        )
    else:
        rewriter.convert(converted, low_tensors, initializers, is_float, input_names, output_names, keep_io_types)
    result.casts = rewriter.casts
    del graph.value_info[:]  # stale types; consumers infer them again
    return result


def _constants_as_initializers(graph: onnx.GraphProto) -> None:
    """Constant nodes hold weights as often as initializers do (exporters differ); as
    initializers they convert to FP16/BF16 in place instead of through a Cast each."""
    constants = []
    for node in graph.node:
        value = constant_value(node) if node.op_type == "Constant" and node.domain in ("", "ai.onnx") else None
        if value is not None and value.dtype == np.float32:
            graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
            constants.append(node)
    for node in constants:
        graph.node.remove(node)


def _keep_reason(node, mode, keep_fp32, magnitudes, initializers, is_float) -> str | None:
    for pattern in keep_fp32:
        if fnmatch.fnmatchcase(node.op_type, pattern) or fnmatch.fnmatchcase(node.name, pattern):
            return f"precision.keep_fp32: {pattern}"
    if node.domain not in ("", "ai.onnx") or node.op_type not in CONVERTIBLE:
        return (
            f"{node.op_type} is kept in FP32 by default"
            if node.op_type in KEEP_FP32_OPS
            else f"{node.op_type} has no reduced-precision rule"
        )
    if mode != "fp16":
        return None
    for out in node.output:
        if magnitudes.get(out, 0.0) > MAGNITUDE_LIMIT:
            return f"output reaches |x| = {magnitudes[out]:.4g} in FP32 (FP16 limit {MAGNITUDE_LIMIT:g} with headroom)"
    for name in node.input:
        if name not in initializers and magnitudes.get(name, 0.0) > FP16_MAX:
            return f"input {name} reaches |x| = {magnitudes[name]:.4g} in FP32 (Inf in FP16, whose largest value is {FP16_MAX:g})"
    for name in node.input:
        if name in initializers and name in is_float:
            values = np.abs(numpy_helper.to_array(initializers[name]))
            if values.size and values.max() > FP16_MAX:
                return f"weight {name} overflows FP16 (|x| = {values.max():.4g})"
            nonzero = values[values > 0]
            if nonzero.size and np.mean(nonzero < FP16_TINY) > 0.5:
                return f"weight {name} would mostly flush to zero in FP16"
    return None


def _dequantize_like_readers(graph: onnx.GraphProto, reasons: dict[str, str | None]) -> None:
    readers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.name)
    for node in graph.node:
        users = readers.get(node.output[0], []) if node.op_type == "DequantizeLinear" else []
        if reasons[node.name] is None and users and all(reasons[user] is not None for user in users):
            reasons[node.name] = f"feeds {users[0]}, which stays FP32"


def _initializers_feeding(graph, converted, initializers, is_float) -> list[str]:
    return sorted(
        {
            name
            for node in graph.node
            if node.name in converted
            for i, name in enumerate(node.input)
            if name in initializers and name in is_float and i not in FP32_INPUTS.get(node.op_type, set())
        }
    )


class _Rewriter:
    def __init__(self, graph: onnx.GraphProto, low: int, emulate: bool):
        self.graph, self.low, self.emulate, self.casts = graph, low, emulate, 0
        self.cache: dict[tuple[str, int], str] = {}
        self.new_nodes: list[tuple[str | None, onnx.NodeProto]] = []  # (insert after this tensor's producer, node)

    def cast(self, tensor: str, to: int) -> str:
        key = (tensor, to)
        if key not in self.cache:
            name = f"{tensor}/to_{'low' if to != TensorProto.FLOAT else 'fp32'}"
            self.cache[key] = name
            self.new_nodes.append((tensor, helper.make_node("Cast", [tensor], [name], name=name, to=to)))
            self.casts += 1
        return self.cache[key]

    def convert(self, converted, low_tensors, initializers, is_float, input_names, output_names, keep_io_types) -> None:
        users: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        outer = {node.name: outer_scope_reads(node) for node in self.graph.node}
        for node in self.graph.node:
            for index, name in enumerate(node.input):
                users.setdefault(name, []).append((node, index))
            for name in outer[node.name]:  # a subgraph of a node kept in FP32 reads it in FP32
                users.setdefault(name, []).append((node, -1))
        for name, init in initializers.items():
            readers = users.get(name, [])
            if (
                readers
                and name in is_float
                and all(n.name in converted and i not in FP32_INPUTS.get(n.op_type, set()) for n, i in readers)
            ):
                init.CopyFrom(low_initializer(numpy_helper.to_array(init), name, self.low))
                low_tensors.add(name)
        renamed_outputs = {}
        if keep_io_types:  # graph outputs made in reduced precision get a Cast back under their own name
            for name in sorted(low_tensors & output_names):
                renamed_outputs[name] = f"{name}/low"
        for node in self.graph.node:
            node.output[:] = [renamed_outputs.get(o, o) for o in node.output]
            for index, name in enumerate(node.input):
                source = renamed_outputs.get(name, name)
                if name not in is_float and source == name:
                    continue
                wants_low = node.name in converted and index not in FP32_INPUTS.get(node.op_type, set())
                has_low = name in low_tensors
                if node.op_type in ("Shape", "Size") or wants_low == has_low:
                    node.input[index] = source
                else:
                    node.input[index] = self.cast(source, self.low if wants_low else TensorProto.FLOAT)
            for name in outer[node.name]:  # subgraph nodes are FP32: give them an FP32 copy
                source = renamed_outputs.get(name, name)
                if name in low_tensors:
                    for subgraph in subgraphs(node):
                        rename_outer_reads(subgraph, name, self.cast(source, TensorProto.FLOAT))
        for original, renamed in renamed_outputs.items():
            self.new_nodes.append(
                (
                    renamed,
                    helper.make_node("Cast", [renamed], [original], name=f"{original}/to_fp32", to=TensorProto.FLOAT),
                )
            )
            self.casts += 1
        for value in self.graph.output:
            if value.name in low_tensors and value.name not in renamed_outputs:
                value.type.tensor_type.elem_type = self.low
        if not keep_io_types:
            for value in self.graph.input:
                if value.name in input_names and value.name in is_float:
                    value.type.tensor_type.elem_type = self.low
        self._insert()

    def round_trip(self, tensors: list[str], converted_initializers: list[str]) -> None:
        """Emulation: each reduced tensor is rounded through the low type and back to FP32. The
        rounded value keeps the tensor's name, so consumers and graph outputs are unchanged."""
        graph = self.graph
        initializers = {init.name: init for init in graph.initializer}
        inputs = {value.name for value in graph.input} - set(initializers)
        producers = {out: node for node in graph.node for out in node.output}
        for name in sorted(set(tensors) | set(converted_initializers)):
            if name in inputs:  # graph inputs keep their name: consumers read a rounded copy
                source, target = name, f"{name}/rounded"
                for node in graph.node:
                    node.input[:] = [target if x == name else x for x in node.input]
            else:
                source, target = f"{name}/raw", name
                if name in producers:
                    producers[name].output[:] = [source if o == name else o for o in producers[name].output]
                else:
                    initializers[name].name = source
            down = helper.make_node("Cast", [source], [f"{name}/low"], name=f"{name}/round_down", to=self.low)
            up = helper.make_node("Cast", [f"{name}/low"], [target], name=f"{name}/round_up", to=TensorProto.FLOAT)
            self.new_nodes += [(source, down), (source, up)]
            self.casts += 2
        self._insert()

    def _insert(self) -> None:
        """Each new Cast goes right after the producer of the tensor it reads (inputs and
        initializers: at the top), so the graph stays topologically sorted."""
        after: dict[str | None, list[onnx.NodeProto]] = {}
        producers = {out: node.name for node in self.graph.node for out in node.output}
        for tensor, node in self.new_nodes:
            after.setdefault(producers.get(tensor), []).append(node)
        ordered = list(after.pop(None, []))
        for node in self.graph.node:
            ordered.append(node)
            ordered.extend(after.get(node.name, []))
        copies = []
        for node in ordered:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copies.append(copy)
        del self.graph.node[:]
        self.graph.node.extend(copies)
        self.new_nodes = []


def low_initializer(values: np.ndarray, name: str, low: int) -> onnx.TensorProto:
    if low == TensorProto.FLOAT16:
        return numpy_helper.from_array(values.astype(np.float16), name)
    # BF16: the upper 16 bits of FP32, rounded to nearest even (numpy has no bfloat16).
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    tensor = onnx.TensorProto(name=name, data_type=TensorProto.BFLOAT16, dims=values.shape)
    tensor.raw_data = rounded.tobytes()
    return tensor

"""The graph trtc hands TensorRT with an FP16 fallback, made runnable as what TensorRT computes:
an FP32 graph in which every tensor the real graph holds in FP16 is rounded through FP16 (Cast
there and back), as trtc's own accuracy check measures FP16 (precision/autocast.py, emulate).

Why not run the FP16 graph itself: onnxruntime's CPU kernels do not round FP16 (ops without an
FP16 kernel run in FP32 behind inserted Casts, and the graph's own Casts around them are dropped),
and at the default optimization level its optimizer miscomputes FP16 graphs with Q/DQ (PP-OCRv4
det's first convolution: |y| up to 11584, 5.08 in FP32). The emulated graph is FP32 with explicit
Casts, and the judge runs every quantized graph with graph optimizations disabled, so Q/DQ and
the rounding happen exactly as written.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def emulate_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` (FP16 and FP32 mixed) in FP32 with FP16 rounding where it held FP16."""
    emulated = onnx.ModelProto()
    emulated.CopyFrom(model)
    graph = emulated.graph
    inferred = onnx.shape_inference.infer_shapes(emulated, strict_mode=False)
    half = {
        v.name
        for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type == TensorProto.FLOAT16
    }
    for init in graph.initializer:  # FP16 weights and scales: the same values in FP32
        if init.data_type == TensorProto.FLOAT16:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    for value in [*graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT
    rounded_inputs = {}
    nodes = []
    for value in graph.input:  # an FP16 input: the FP32 feed is rounded first
        if value.name in half:
            rounded_inputs[value.name] = f"{value.name}/fp16"
            nodes += _round_trip(value.name, rounded_inputs[value.name])
    for node in graph.node:
        node.input[:] = [rounded_inputs.get(name, name) for name in node.input]
        _constants_in_fp32(node)
        after = []
        for position, name in enumerate(node.output):
            if name not in half:
                continue
            if node.op_type == "Cast":  # Cast to FP16 stays; a Cast back to FP32 follows under the tensor's name
                node.output[position] = f"{name}/fp16"
                after.append(
                    helper.make_node("Cast", [f"{name}/fp16"], [name], name=f"{name}/to_fp32", to=TensorProto.FLOAT)
                )
            else:  # computed in FP32, then rounded
                node.output[position] = f"{name}/fp32"
                after += _round_trip(f"{name}/fp32", name)
        nodes += [node, *after]
    copies = []
    for node in nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copies.append(copy)
    del graph.node[:]
    graph.node.extend(copies)
    del graph.value_info[:]
    return emulated


def _round_trip(source: str, target: str) -> list[onnx.NodeProto]:
    return [
        helper.make_node("Cast", [source], [f"{target}/low"], name=f"{target}/round_down", to=TensorProto.FLOAT16),
        helper.make_node("Cast", [f"{target}/low"], [target], name=f"{target}/round_up", to=TensorProto.FLOAT),
    ]


def _constants_in_fp32(node: onnx.NodeProto) -> None:
    """Constant and ConstantOfShape values in FP16 become FP32 (the output is rounded anyway)."""
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT16:
            attribute.t.CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float32), attribute.t.name)
            )

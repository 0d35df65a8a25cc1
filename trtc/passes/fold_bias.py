"""Fold an Add of a constant per-output-channel bias into the Conv or Gemm before it, and a
MatMul (2-D input) followed by such an Add into one Gemm."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from trtc.graph.graph_index import GraphIndex, apply_rewrites, attributes, drop_unused_initializers
from trtc.graph.shapes import tensor_types
from trtc.passes.base import Change, PassContext


class FoldBiasAdd:
    name = "fold-bias"
    description = "fold a constant bias Add into the Conv/Gemm/MatMul before it"

    def run(self, model: onnx.ModelProto, context: PassContext) -> list[Change]:
        graph = model.graph
        index = GraphIndex(graph)
        changes, rewrites, claimed = [], [], set()
        types = None
        for add in [n for n in graph.node if n.op_type == "Add" and not n.domain]:
            for data_input, const_input in ((0, 1), (1, 0)):
                producer = index.producer.get(add.input[data_input])
                constant = index.constant(add.input[const_input])
                if producer is None or constant is None or index.only_consumer(add.input[data_input]) is not add:
                    continue
                if {producer.name, add.name} & (context.exclude | claimed) or producer.domain:
                    continue
                if producer.op_type == "MatMul" and types is None:
                    types = tensor_types(model)
                fused = _fold(producer, add, constant, index, types)
                if fused is None:
                    continue
                rewrites.append(([producer.name, add.name], [fused]))
                claimed.update((producer.name, add.name))
                changes.append(
                    Change(
                        self.name,
                        "fold",
                        (producer.name, add.name),
                        (fused.name,),
                        f"bias Add folded into {producer.op_type}"
                        + (" (now a Gemm)" if producer.op_type == "MatMul" else ""),
                    )
                )
                break
        if rewrites:
            apply_rewrites(graph, rewrites)
            drop_unused_initializers(graph)
        return changes


def _fold(
    producer: onnx.NodeProto, add: onnx.NodeProto, constant: np.ndarray, index: GraphIndex, types
) -> onnx.NodeProto | None:
    weight = index.constant(producer.input[1]) if len(producer.input) > 1 else None
    if weight is None:
        return None
    old_bias = index.constant(producer.input[2]) if len(producer.input) > 2 and producer.input[2] else None
    if len(producer.input) > 2 and producer.input[2] and old_bias is None:
        return None
    attrs = attributes(producer)
    if producer.op_type == "Conv":
        channels, rank = weight.shape[0], weight.ndim
        if constant.ndim > rank:
            return None
        aligned = (1,) * (rank - constant.ndim) + constant.shape  # as broadcast against [N, C, ...]
        if constant.size != 1 and (aligned[1] != channels or any(d != 1 for i, d in enumerate(aligned) if i != 1)):
            return None  # varies along another axis than the channels
        bias = np.broadcast_to(constant.reshape(-1), (channels,))
        kind, extra = "Conv", {}
    elif producer.op_type == "Gemm":
        columns = weight.shape[0] if attrs.get("transB", 0) else weight.shape[1]
        if constant.size not in (1, columns) or (constant.ndim == 2 and constant.shape[0] != 1) or constant.ndim > 2:
            return None
        bias = np.broadcast_to(constant.reshape(-1), (columns,))
        if old_bias is not None:
            old_bias = (
                attrs.get("beta", 1.0) * np.broadcast_to(old_bias, (columns,))
                if old_bias.size in (1, columns) and old_bias.ndim <= 1
                else None
            )
            if old_bias is None:
                return None
        kind, extra = "Gemm", {"beta": 1.0}
    elif producer.op_type == "MatMul":
        left = types.get(producer.input[0])
        if weight.ndim != 2 or left is None or left.shape is None or len(left.shape) != 2:
            return None
        if (
            constant.size not in (1, weight.shape[1])
            or constant.ndim > 2
            or (constant.ndim == 2 and constant.shape[0] != 1)
        ):
            return None
        bias = np.broadcast_to(constant.reshape(-1), (weight.shape[1],))
        kind, extra = "Gemm", {}
    else:
        return None
    if not np.issubdtype(weight.dtype, np.floating):
        return None
    total = bias + (old_bias if old_bias is not None else 0)
    bias_name = index.add_initializer(f"{producer.name}.bias", np.asarray(total, dtype=weight.dtype))
    carried = {k: v for k, v in attrs.items() if producer.op_type != "MatMul"}
    carried.update(extra)
    return helper.make_node(
        kind,
        [producer.input[0], producer.input[1], bias_name],
        [add.output[0]],
        name=f"{producer.name}+{add.name}",
        **carried,
    )

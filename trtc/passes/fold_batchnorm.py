"""Fold BatchNormalization (inference form) into the Conv, ConvTranspose or Gemm before it, and a
lone BatchNormalization into one per-channel Mul + Add.

Fires only when the producer's output feeds the BatchNorm alone and is not a graph output, its
weights are constants, and the BatchNorm has constant per-channel parameters, a single output and
inference statistics (not spatial=0 of opset < 9, not training_mode)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from trtc.graph.graph_index import GraphIndex, apply_rewrites, attributes, drop_unused_initializers
from trtc.graph.shapes import tensor_types
from trtc.passes.base import Change, PassContext


class FoldBatchNorm:
    name = "fold-batchnorm"
    description = "fold BatchNormalization into the Conv/ConvTranspose/Gemm before it, or into a Mul+Add"

    def run(self, model: onnx.ModelProto, context: PassContext) -> list[Change]:
        graph = model.graph
        index = GraphIndex(graph)
        changes, rewrites, claimed = [], [], set()
        types = None
        for bn in [n for n in graph.node if n.op_type == "BatchNormalization" and not n.domain]:
            params = [index.constant(name) for name in bn.input[1:5]]
            if bn.name in context.exclude or len([o for o in bn.output if o]) != 1 or any(p is None for p in params):
                continue
            settings = attributes(bn)
            if (
                settings.get("spatial", 1) == 0
                or settings.get("training_mode", 0) == 1
                or any(p.ndim != 1 for p in params)
            ):
                continue  # per-element statistics (opset < 9, spatial=0) or batch statistics: no per-channel form
            gamma, beta, mean, var = (p.astype(np.float64) for p in params)
            scale = gamma / np.sqrt(var + settings.get("epsilon", 1e-5))
            shift = beta - mean * scale
            producer = index.producer.get(bn.input[0])
            if (
                producer is not None
                and index.only_consumer(bn.input[0]) is bn
                and producer.name not in context.exclude
                and producer.name not in claimed
            ):
                fused = _fold_into(producer, bn.name, index, scale, shift)
                if fused is not None:
                    fused.output[0] = bn.output[0]
                    rewrites.append(([producer.name, bn.name], [fused]))
                    claimed.add(producer.name)
                    changes.append(
                        Change(
                            self.name,
                            "fold",
                            (producer.name, bn.name),
                            (fused.name,),
                            f"BatchNormalization folded into {producer.op_type} weights and bias",
                        )
                    )
                    continue
            types = types or tensor_types(model)
            rank = (
                len(types[bn.input[0]].shape) if bn.input[0] in types and types[bn.input[0]].shape is not None else None
            )
            if rank is None or rank < 2:
                continue
            dtype = onnx.helper.tensor_dtype_to_np_dtype(types[bn.input[0]].elem_type)
            per_channel = (-1,) + (1,) * (rank - 2)
            scale_name = index.add_initializer(f"{bn.name}.scale", scale.reshape(per_channel).astype(dtype))
            shift_name = index.add_initializer(f"{bn.name}.shift", shift.reshape(per_channel).astype(dtype))
            mul = helper.make_node(
                "Mul", [bn.input[0], scale_name], [index.unique(f"{bn.name}.scaled")], name=f"{bn.name}/scale"
            )
            add = helper.make_node("Add", [mul.output[0], shift_name], [bn.output[0]], name=f"{bn.name}/shift")
            rewrites.append(([bn.name], [mul, add]))
            changes.append(
                Change(
                    self.name,
                    "fold",
                    (bn.name,),
                    (mul.name, add.name),
                    "lone BatchNormalization as a per-channel scale and shift",
                )
            )
        if rewrites:
            apply_rewrites(graph, rewrites)
            drop_unused_initializers(graph)
        return changes


def _fold_into(
    producer: onnx.NodeProto, bn_name: str, index: GraphIndex, scale: np.ndarray, shift: np.ndarray
) -> onnx.NodeProto | None:
    kind = producer.op_type
    if producer.domain or kind not in ("Conv", "ConvTranspose", "Gemm") or len(producer.input) < 2:
        return None
    weight = index.constant(producer.input[1])
    bias = index.constant(producer.input[2]) if len(producer.input) > 2 and producer.input[2] else None
    if weight is None or (len(producer.input) > 2 and producer.input[2] and bias is None):
        return None
    attrs = attributes(producer)
    dtype = weight.dtype
    scale = scale.astype(np.result_type(dtype, np.float32))  # no float64 copy of large weights
    if kind == "Conv":
        new_weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
        new_bias = (bias if bias is not None else 0.0) * scale + shift
    elif kind == "ConvTranspose":
        groups = attrs.get("group", 1)
        grouped = weight.reshape((groups, weight.shape[0] // groups) + weight.shape[1:])
        per_output = scale.reshape((groups, 1, -1) + (1,) * (weight.ndim - 2))
        new_weight = (grouped * per_output).reshape(weight.shape)
        new_bias = (bias if bias is not None else 0.0) * scale + shift
    else:  # Gemm: Y = alpha * A @ B + beta * C, BatchNorm over the output's columns
        new_weight = weight * (scale.reshape(-1, 1) if attrs.get("transB", 0) else scale.reshape(1, -1))
        if bias is not None and bias.size not in (1, scale.size):
            return None
        beta_c = attrs.get("beta", 1.0) * (bias.reshape(-1) if bias is not None else 0.0)
        new_bias = beta_c * scale + shift
    if new_weight.shape != weight.shape:
        return None
    weight_name = index.add_initializer(f"{producer.name}.folded_weight", new_weight.astype(dtype, copy=False))
    bias_name = index.add_initializer(
        f"{producer.name}.folded_bias", np.asarray(new_bias, np.float64).reshape(-1).astype(dtype)
    )
    fused = onnx.NodeProto()
    fused.CopyFrom(producer)
    fused.name = f"{producer.name}+{bn_name}"
    del fused.input[:]
    fused.input.extend([producer.input[0], weight_name, bias_name])
    if kind == "Gemm":
        for attribute in fused.attribute:
            if attribute.name == "beta":
                attribute.f = 1.0
    return fused

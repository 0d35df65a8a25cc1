"""Tensor types and shapes by ONNX shape inference, without copying the weights.

onnx's inference serializes the whole model; large initializers are replaced by their type and
dims (inference never reads float weights), so a 200 MB model costs kilobytes here."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from trtc.graph.polynomial import Poly
from trtc.graph.shape_values import resolve_shape_values

# Initializers up to this size keep their data: shape-like int64 tensors feed Reshape/Expand/...
_KEEP_DATA_BYTES = 4096


@dataclass(frozen=True)
class TensorType:
    elem_type: int  # onnx.TensorProto.FLOAT, ...
    shape: tuple[int | str | None, ...] | None  # None: rank unknown; str/None: dynamic dim

    @property
    def static_shape(self) -> tuple[int, ...] | None:
        """The shape when every dimension is known: an integer, or a polynomial in the
        symbols `trtc inspect` gives dynamic dimensions (graph/symbolic.py)."""
        if self.shape is None or not all(isinstance(d, (int, Poly)) for d in self.shape):
            return None
        return self.shape  # type: ignore[return-value]

    @property
    def itemsize(self) -> int:
        return onnx.helper.tensor_dtype_to_np_dtype(self.elem_type).itemsize if self.elem_type else 4


def tensor_types(
    model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, TensorType]:
    """Type and shape of every tensor that inference can tell, with graph inputs optionally fixed
    to concrete shapes (e.g. a profile's opt shape)."""
    light = _light_copy(model, input_shapes or {})
    inferred = resolve_shape_values(light, _infer(light), _infer)
    types: dict[str, TensorType] = {}
    for init in model.graph.initializer:
        types[init.name] = TensorType(init.data_type, tuple(init.dims))
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if value.type.HasField("tensor_type"):
            types[value.name] = _tensor_type(value.type.tensor_type)
    for node in model.graph.node:  # Constant nodes carry their tensor
        if node.op_type == "Constant" and not node.domain:
            for attribute in node.attribute:
                if attribute.name == "value":
                    types[node.output[0]] = TensorType(attribute.t.data_type, tuple(attribute.t.dims))
    return types


def _infer(light: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - inference gives up on some real models; fall back to declarations
        return light


def _tensor_type(tensor: onnx.TypeProto.Tensor) -> TensorType:
    if not tensor.HasField("shape"):
        return TensorType(tensor.elem_type, None)
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
    return TensorType(tensor.elem_type, dims)


def _light_copy(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph = light.graph
    graph.name = model.graph.name
    graph.node.extend(model.graph.node)
    graph.output.extend(model.graph.output)
    initializer_names = {init.name for init in model.graph.initializer}
    for value in model.graph.input:
        copy = graph.input.add()
        copy.CopyFrom(value)
        if value.name in input_shapes and value.name not in initializer_names:
            copy.type.tensor_type.shape.Clear()
            for dim in input_shapes[value.name]:
                if isinstance(dim, str):  # a symbol: inference carries it through
                    copy.type.tensor_type.shape.dim.add().dim_param = dim
                else:
                    copy.type.tensor_type.shape.dim.add().dim_value = dim
    declared = {value.name for value in graph.input}
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL or _byte_size(init) > _KEEP_DATA_BYTES:
            if init.name not in declared:
                graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        else:
            graph.initializer.append(init)
    return light


def _byte_size(init: onnx.TensorProto) -> int:
    count = 1
    for dim in init.dims:
        count *= dim
    return count * 8

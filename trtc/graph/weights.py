"""A model as its structure plus its large weights, each weight held once.

The graph passes work on a ModelProto; once they are done, its large weights are taken out
(one copy) and the protobuf is dropped. onnxruntime then runs on the weights where they are
(graph/reference.py), and TensorRT parses one serialization written straight from them
(`serialized`) that it owns and the build frees once parsed; TensorRT can also take them by
reference (`load_initializer`), which models over protobuf's 2 GiB limit need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from trtc.errors import ModelError

# Initializers larger than this are handed over by reference; smaller ones stay in the structure,
# which keeps every value shape inference reads (graph/shapes.py keeps up to 512 elements).
EXTERNAL_BYTES = 4096
# Element types whose raw bytes numpy can view as they are (onnxruntime needs a typed array),
# with their sizes in bytes.
_VIEWABLE = {
    TensorProto.FLOAT: 4,
    TensorProto.FLOAT16: 2,
    TensorProto.DOUBLE: 8,
    TensorProto.INT8: 1,
    TensorProto.UINT8: 1,
    TensorProto.INT16: 2,
    TensorProto.UINT16: 2,
    TensorProto.INT32: 4,
    TensorProto.UINT32: 4,
    TensorProto.INT64: 8,
    TensorProto.UINT64: 8,
    TensorProto.BOOL: 1,
}
LOCATION = "trtc-weights-in-memory"  # never read: every external initializer is given by the caller


@dataclass(frozen=True)
class SplitModel:
    structure: bytes  # the serialized model; the initializers in `weights` are external data in it
    weights: dict[str, bytes]  # initializer name -> its raw little-endian bytes
    types: dict[str, tuple[int, tuple[int, ...]]]  # initializer name -> (TensorProto element type, dims)

    def array(self, name: str) -> np.ndarray:
        """A read-only view of one weight, no copy."""
        elem_type, dims = self.types[name]
        return np.frombuffer(self.weights[name], dtype=onnx.helper.tensor_dtype_to_np_dtype(elem_type)).reshape(dims)

    def serialized(self) -> bytearray | None:
        """The whole model as one serialized protobuf, or None over protobuf's 2 GiB limit.

        What TensorRT parses when it is to own the weights: given by reference, TensorRT-RTX
        copies them once more while it builds (110 MB more at its peak on a 100 MB model).
        Written by hand, each weight copied once straight into the result: protobuf merges a
        message that comes in parts, so the large initializers follow the rest of the model as
        a second `graph` field. A bytearray, so that whoever parses it can free it."""
        head = onnx.load_from_string(self.structure)
        initializers = head.graph.initializer
        headers = []
        for index in range(len(initializers) - 1, -1, -1):
            tensor = initializers[index]
            if tensor.name in self.weights:
                meta = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
                if tensor.HasField("doc_string"):
                    meta.doc_string = tensor.doc_string
                headers.append(
                    (
                        meta.SerializeToString() + _key(9) + _varint(len(self.weights[tensor.name])),
                        self.weights[tensor.name],
                    )
                )
                del initializers[index]
        parts = [head.SerializeToString()]
        if headers:
            parts += [_key(7), b""]  # the second graph field; its length goes in [2]
            for header, data in reversed(headers):
                parts += [_key(5), _varint(len(header) + len(data)), header, data]
            parts[2] = _varint(sum(len(part) for part in parts[3:]))
        total = sum(len(part) for part in parts)
        if total >= 1 << 31:
            return None
        result = bytearray(total)
        view, offset = memoryview(result), 0
        for part in parts:
            view[offset : offset + len(part)] = part
            offset += len(part)
        return result

    def joined(self) -> onnx.ModelProto:
        """The whole model again (for what needs one protobuf: a failure's diagnosis, output.onnx)."""
        model = onnx.load_from_string(self.structure)
        for tensor in model.graph.initializer:
            if tensor.name in self.weights:
                del tensor.external_data[:]
                tensor.ClearField("data_location")
                tensor.raw_data = self.weights[tensor.name]
        return model


def split_weights(model: onnx.ModelProto) -> SplitModel:
    """`model`'s structure and its large weights. `model` itself is left unchanged; the caller
    drops it afterwards so that the weights are in memory once (in `weights`)."""
    weights: dict[str, bytes] = {}
    structure = _structure(model, weights)
    types = {
        tensor.name: (tensor.data_type, tuple(tensor.dims))
        for tensor in structure.graph.initializer
        if tensor.name in weights
    }
    return SplitModel(structure.SerializeToString(), weights, types)


def structure_of(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` without the data of its large initializers (their names, types and dims stay):
    enough for shape inference, costs and the report, at a few kilobytes."""
    return _structure(model, None)


def _structure(model: onnx.ModelProto, weights: dict[str, bytes] | None) -> onnx.ModelProto:
    """The light copy; each large initializer's bytes go into `weights` when it is given."""
    structure = _without_initializers(model)
    for tensor in model.graph.initializer:
        copy = structure.graph.initializer.add()
        # Reading `raw_data` copies it: the size comes from the type and dims.
        length = _VIEWABLE.get(tensor.data_type, 0) * math.prod(tensor.dims)
        if not (
            tensor.HasField("raw_data") and length > EXTERNAL_BYTES and tensor.data_location != TensorProto.EXTERNAL
        ):
            copy.CopyFrom(tensor)
            continue
        copy.name, copy.data_type = tensor.name, tensor.data_type
        copy.dims.extend(tensor.dims)
        if tensor.HasField("doc_string"):
            copy.doc_string = tensor.doc_string
        copy.data_location = TensorProto.EXTERNAL
        if weights is not None:
            weights[tensor.name] = data = tensor.raw_data  # one copy, out of the protobuf
            if len(data) != length:
                raise ModelError(
                    f"model: initializer '{tensor.name}' holds {len(data)} bytes, its type and shape need {length}; export it again"
                )
        for key, value in (("location", LOCATION), ("offset", "0"), ("length", str(length))):
            entry = copy.external_data.add()
            entry.key, entry.value = key, value
    return structure


def _key(field_number: int) -> bytes:
    """A length-delimited field's key in protobuf's wire format."""
    return _varint(field_number << 3 | 2)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _without_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with every field but the main graph's initializers (whose data is what
    makes a copy expensive)."""
    copy = onnx.ModelProto()
    for field, value in model.ListFields():
        if field.name != "graph":
            _copy_field(copy, field, value)
    for field, value in model.graph.ListFields():
        if field.name != "initializer":
            _copy_field(copy.graph, field, value)
    return copy


def _copy_field(target, field, value) -> None:
    repeated = (
        field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
    )  # protobuf < 5.28
    if repeated:
        getattr(target, field.name).extend(value)
    elif field.type == field.TYPE_MESSAGE:
        getattr(target, field.name).CopyFrom(value)
    else:
        setattr(target, field.name, value)

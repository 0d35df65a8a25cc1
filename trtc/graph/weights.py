"""A model as its structure plus its large weights, each weight held once.

The graph passes work on a ModelProto; once they are done, its large weights are taken out
(one copy) and the protobuf is dropped. They are copied straight into place in one buffer that
is the whole model serialized: TensorRT parses that buffer (`serialized`) and the build lets go
of it once parsed, while onnxruntime runs on the weights where they are, inside it
(graph/reference.py). TensorRT can also take them by reference (`load_initializer`), which
models over protobuf's 2 GiB limit need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

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


ALIGNMENT = 16  # of each weight in the buffer, as in a bytes object: numpy and onnxruntime read them in place


@dataclass(frozen=True)
class SplitModel:
    structure: bytes  # the serialized model; the initializers in `weights` are external data in it
    weights: dict[str, memoryview]  # initializer name -> its raw little-endian bytes, in `whole`
    types: dict[str, tuple[int, tuple[int, ...]]]  # initializer name -> (TensorProto element type, dims)
    whole: memoryview | None = None  # the whole model serialized, the weights in it (split_weights' own)

    def array(self, name: str) -> np.ndarray:
        """A read-only view of one weight, no copy."""
        elem_type, dims = self.types[name]
        return np.frombuffer(self.weights[name], dtype=onnx.helper.tensor_dtype_to_np_dtype(elem_type)).reshape(dims)

    def serialized(self) -> memoryview | None:
        """The whole model as one serialized protobuf, or None over protobuf's 2 GiB limit (or for
        a split made from another's weights).

        What TensorRT parses when it is to own the weights: given by reference, TensorRT-RTX
        copies them once more while it builds (110 MB more at its peak on a 100 MB model). A
        view of its own, which whoever parses it can let go of (`release()`)."""
        return memoryview(self.whole) if self.whole is not None and len(self.whole) < 1 << 31 else None

    def joined(self) -> onnx.ModelProto:
        """The whole model again (for what needs one protobuf: a failure's diagnosis, output.onnx)."""
        model = onnx.load_from_string(self.structure)
        for tensor in model.graph.initializer:
            if tensor.name in self.weights:
                del tensor.external_data[:]
                tensor.ClearField("data_location")
                tensor.raw_data = bytes(self.weights[tensor.name])
        return model


def split_weights(model: onnx.ModelProto) -> SplitModel:
    """`model`'s structure and its large weights, laid out as the whole model serialized. `model`
    itself is left unchanged; the caller drops it afterwards so that the weights are in memory
    once (in `whole`)."""
    large: list[tuple[TensorProto, int]] = []
    structure = _structure(model, lambda tensor, length: large.append((tensor, length)))

    def fill(tensor: TensorProto, place: memoryview) -> None:
        data = tensor.raw_data  # a copy out of the protobuf, for a moment
        if len(data) != len(place):
            raise ModelError(
                f"model: initializer '{tensor.name}' holds {len(data)} bytes, its type and shape need {len(place)}; export it again"
            )
        place[:] = data

    return lay_out(structure, large, fill)


def lay_out(
    structure: onnx.ModelProto,
    large: list[tuple[TensorProto, int]],
    fill: Callable[[TensorProto, memoryview], None],
) -> SplitModel:
    """The split of a model whose structure is `structure` (its large initializers external, as
    `structure_of` makes it): `large` are those initializers and their lengths in bytes, `fill`
    copies one's data into its place.

    Written by hand, each weight copied once straight into place: protobuf merges a message that
    comes in parts, so each large initializer follows the rest of the model in a `graph` field of
    its own, its data starting at a multiple of ALIGNMENT (a first `name` field of spaces, which
    the real name after it replaces, takes up the difference)."""
    serialized_structure = structure.SerializeToString()
    types = {tensor.name: (tensor.data_type, tuple(tensor.dims)) for tensor, _ in large}
    head = onnx.ModelProto()
    head.CopyFrom(structure)
    initializers = head.graph.initializer
    for index in range(len(initializers) - 1, -1, -1):
        if initializers[index].name in types:
            del initializers[index]
    serialized_head = head.SerializeToString()
    headers, size = [], len(serialized_head)
    for tensor, length in large:
        meta = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
        if tensor.HasField("doc_string"):
            meta.doc_string = tensor.doc_string
        headers.append(_aligned_header(size, meta.SerializeToString(), length))
        size += len(headers[-1]) + length
    buffer = bytearray(size + ALIGNMENT)
    start = -np.frombuffer(buffer, np.uint8, count=1).ctypes.data % ALIGNMENT
    whole = memoryview(buffer)[start : start + size]
    whole[: len(serialized_head)] = serialized_head
    places, offset = {}, len(serialized_head)
    for header, (tensor, length) in zip(headers, large):
        whole[offset : offset + len(header)] = header
        offset += len(header)
        fill(tensor, whole[offset : offset + length])
        places[tensor.name] = slice(offset, offset + length)
        offset += length
    whole = whole.toreadonly()
    return SplitModel(serialized_structure, {name: whole[place] for name, place in places.items()}, types, whole)


def _aligned_header(offset: int, meta: bytes, length: int) -> bytes:
    """What goes at `offset` before a weight's data: a `graph` field holding one initializer,
    `meta`, and the key and length of the raw data, padded so that the data starts at a
    multiple of ALIGNMENT."""
    for padding in range(2 * ALIGNMENT):  # each step adds a byte, now and then two
        tensor_head = _key(8) + _varint(padding) + b" " * padding + meta + _key(9) + _varint(length)
        initializer = _key(5) + _varint(len(tensor_head) + length) + tensor_head
        header = _key(7) + _varint(len(initializer) + length) + initializer
        if (offset + len(header)) % ALIGNMENT == 0:
            return header
    raise AssertionError("no padding aligns the weight")


def structure_of(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` without the data of its large initializers (their names, types and dims stay):
    enough for shape inference, costs and the report, at a few kilobytes."""
    return _structure(model, None)


def _structure(model: onnx.ModelProto, take: Callable[[TensorProto, int], None] | None) -> onnx.ModelProto:
    """The light copy; `take` is told each large initializer and its length in bytes."""
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
        if take is not None:
            take(tensor, length)
        _mark_external(copy, length)
    return structure


def _mark_external(tensor: TensorProto, length: int) -> None:
    """Make `tensor` an external initializer whose data the caller gives by reference."""
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", LOCATION), ("offset", "0"), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def split_from_arrays(model: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> SplitModel:
    """The split of `model` plus `arrays` as its initializers, given by reference: for graphs trtc
    makes itself with large weights (a probe holding each weight five times), which onnxruntime
    then runs on the arrays where they are instead of a protobuf copy it parses again."""
    types = {}
    for name, array in arrays.items():
        tensor = model.graph.initializer.add()
        tensor.name, tensor.data_type = name, onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        _mark_external(tensor, array.nbytes)
        types[name] = (tensor.data_type, tuple(array.shape))
    weights = {name: memoryview(np.ascontiguousarray(array)).cast("B") for name, array in arrays.items()}
    return SplitModel(model.SerializeToString(), weights, types)


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

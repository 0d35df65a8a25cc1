"""The user's model with its large weights left in its file until onnxruntime needs them.

onnxruntime given the file copies every weight twice as it starts a session (its protobuf, then
its tensors: 210 MB of new memory and 0.24-0.32 s of CPU for a 100 MB model, beside TensorRT's
build). Where each weight's bytes sit in the file is known from the bytes trtc read (protobuf's
wire format, walked without parsing the weights); `split()` reads them once, each straight
into place in a split model (graph/weights.py) that onnxruntime runs on where it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from trtc.graph.weights import LOCATION, SplitModel, lay_out

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5  # protobuf wire types
_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_NAME, _TENSOR_RAW_DATA = 7, 5, 8, 9  # field numbers in onnx.proto


@dataclass(frozen=True)
class WeightsInFile:
    structure: bytes  # the serialized model, its large initializers external (`structure_of`)
    path: Path
    places: dict[str, tuple[int, int]]  # large initializer name -> (offset, length) of its raw data in the file

    def split(self) -> SplitModel:
        structure = onnx.load_from_string(self.structure)
        large = [
            (tensor, self.places[tensor.name][1])
            for tensor in structure.graph.initializer
            if tensor.name in self.places
        ]
        with open(self.path, "rb", buffering=0) as handle:

            def fill(tensor: TensorProto, place: memoryview) -> None:
                offset, length = self.places[tensor.name]
                if os.preadv(handle.fileno(), [place], offset) != length:
                    raise OSError(f"{self.path} is shorter than when it was read")

            return lay_out(structure, large, fill)


def weights_in_file(
    structure: onnx.ModelProto, path: Path, places: dict[str, tuple[int, int]] | None
) -> WeightsInFile | None:
    """`structure`'s large weights where they sit in `path` (`places`: `raw_data_places` of its
    bytes); None when one is not there with its length (then onnxruntime reads the file itself)."""
    wanted = {
        tensor.name: int(next(entry.value for entry in tensor.external_data if entry.key == "length"))
        for tensor in structure.graph.initializer
        if any(entry.value == LOCATION for entry in tensor.external_data)
    }
    if places is None or any(places.get(name, (0, -1))[1] != length for name, length in wanted.items()):
        return None
    return WeightsInFile(structure.SerializeToString(), path, {name: places[name] for name in wanted})


def raw_data_places(data: bytes) -> dict[str, tuple[int, int]] | None:
    """Initializer name -> (offset, length) of its raw data, for the main graph's initializers;
    None for a wire format this walk does not expect, or a name found twice."""
    places: dict[str, tuple[int, int]] = {}
    try:
        for number, start, end in _fields(data, 0, len(data)):
            if number != _MODEL_GRAPH:
                continue
            for graph_number, tensor_start, tensor_end in _fields(data, start, end):
                if graph_number != _GRAPH_INITIALIZER:
                    continue
                name, raw = None, None
                for tensor_number, field_start, field_end in _fields(data, tensor_start, tensor_end):
                    if tensor_number == _TENSOR_NAME:
                        name = bytes(data[field_start:field_end]).decode()
                    elif tensor_number == _TENSOR_RAW_DATA:
                        raw = (field_start, field_end - field_start)
                if name is not None and raw is not None:
                    if name in places:
                        return None
                    places[name] = raw
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return places


def _fields(data: bytes, position: int, end: int):
    """(field number, start, end) of each length-delimited field between `position` and `end`;
    the others are skipped."""
    while position < end:
        key, position = _varint(data, position)
        wire_type = key & 7
        if wire_type == _VARINT:
            _, position = _varint(data, position)
        elif wire_type == _FIXED64:
            position += 8
        elif wire_type == _FIXED32:
            position += 4
        elif wire_type == _LENGTH:
            length, position = _varint(data, position)
            if position + length > end:
                raise ValueError("a field runs past its message")
            yield key >> 3, position, position + length
            position += length
        else:
            raise ValueError(f"wire type {wire_type}")  # groups: not in ONNX files
    if position != end:
        raise ValueError("a field runs past its message")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")

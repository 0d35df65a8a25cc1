"""The original model's weights read from the user's file for onnxruntime: found where they are
in the file whatever the order of a tensor's fields, each read once into an aligned place, and
the model they make runs as the file does; anything unexpected leaves onnxruntime the file."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests import models
from trtc.graph.file_weights import raw_data_places, weights_in_file
from trtc.graph.reference import Reference
from trtc.graph.weights import _key, _varint, structure_of

MODEL = models.conv_bn_relu(channels=64)  # w0 (6912 bytes) is large


def test_each_initializer_is_found_where_its_raw_data_is():
    data = MODEL.SerializeToString()
    places = raw_data_places(data)
    for tensor in MODEL.graph.initializer:
        if tensor.HasField("raw_data"):
            offset, length = places[tensor.name]
            assert data[offset : offset + length] == tensor.raw_data


def test_the_order_of_a_tensors_fields_does_not_matter():
    tensor = next(t for t in MODEL.graph.initializer if t.name == "w0")
    dims = b"".join(bytes([1 << 3]) + _varint(d) for d in tensor.dims)  # unpacked, one field each
    fields = [_key(9) + _varint(len(tensor.raw_data)) + tensor.raw_data, dims, bytes([2 << 3, 1]), _key(8) + b"\x02w0"]
    reordered = b"".join(fields)
    data = (
        _key(7)
        + _varint(len(reordered) + 1 + len(_varint(len(reordered))))
        + _key(5)
        + _varint(len(reordered))
        + reordered
    )
    assert onnx.load_from_string(data).graph.initializer[0].raw_data == tensor.raw_data
    offset, length = raw_data_places(data)["w0"]
    assert data[offset : offset + length] == tensor.raw_data


@pytest.mark.parametrize("damage", ["truncated", "a name twice"])
def test_a_file_this_walk_does_not_expect_leaves_onnxruntime_the_file(damage):
    model = onnx.ModelProto()
    model.CopyFrom(MODEL)
    if damage == "a name twice":
        model.graph.initializer.append(next(t for t in MODEL.graph.initializer if t.name == "w0"))
    data = model.SerializeToString()
    if damage == "truncated":
        data = data[: len(data) // 2]
    assert raw_data_places(data) is None
    assert weights_in_file(structure_of(MODEL), "model.onnx", raw_data_places(data)) is None


def test_the_model_read_from_the_file_runs_as_the_file(tmp_path):
    path = tmp_path / "model.onnx"
    models.save(MODEL, path)
    source = weights_in_file(structure_of(MODEL), path, raw_data_places(path.read_bytes()))
    split = source.split()
    array = split.array("w0")
    assert array.ctypes.data % 16 == 0 and not array.flags.writeable
    np.testing.assert_array_equal(
        array, onnx.numpy_helper.to_array(next(t for t in MODEL.graph.initializer if t.name == "w0"))
    )
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(
        Reference(source, optimize=False).run({"x": x})["y"], Reference(path, optimize=False).run({"x": x})["y"]
    )

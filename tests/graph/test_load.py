"""Reading a model costs one copy of its weights (protobuf's), not two: the file is mapped, not
read into a bytes object first; its hash and weight places still come from those bytes."""

import hashlib
import tracemalloc

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from trtc.errors import ModelError
from trtc.graph.io import load_model

WEIGHT_BYTES = 16 << 20


def _model_file(tmp_path):
    weight = np.arange(WEIGHT_BYTES // 4, dtype=np.float32).reshape(-1, 1024)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "load",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1024])],
        [numpy_helper.from_array(weight, "w")],
    )
    path = tmp_path / "model.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path, weight


def test_loading_does_not_hold_the_file_in_python_memory(tmp_path):
    path, weight = _model_file(tmp_path)
    tracemalloc.start()
    try:
        loaded = load_model(path, weight_places=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < WEIGHT_BYTES // 4, f"{peak} bytes allocated by Python while loading a {WEIGHT_BYTES}-byte weight"
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.proto.graph.initializer[0]), weight)
    offset, length = loaded.weight_places["w"]
    assert path.read_bytes()[offset : offset + length] == weight.tobytes()


@pytest.mark.parametrize("content", [b"", b"\xff\xff\xff"], ids=["empty", "not protobuf"])
def test_a_file_that_is_no_model_is_one_clear_error(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="model: .*model.onnx"):
        load_model(path)

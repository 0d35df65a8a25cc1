"""A model as its structure plus its weights: the same model again whichever way it is handed
over (serialized for TensorRT to own, joined, by reference to TensorRT, in place to onnxruntime),
and each large weight held once."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests import models
from trtc.backend.builder import BuildSettings, ModelSource, build_plan
from trtc.backend.trt_import import import_tensorrt
from trtc.errors import ModelError
from trtc.graph.reference import Reference
from trtc.graph.weights import EXTERNAL_BYTES, split_from_arrays, split_weights, structure_of
from trtc.spec.model import ShapeRange

MODEL = models.conv_bn_relu(channels=64)  # w0 is 6912 bytes: large; the BatchNorm's are small


def by_name(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {tensor.name: tensor for tensor in model.graph.initializer}


def without_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.initializer[:]
    return copy


def test_the_split_keeps_small_initializers_and_takes_large_ones_out_once():
    split = split_weights(MODEL)
    assert list(split.weights) == ["w0"] and len(split.weights["w0"]) > EXTERNAL_BYTES
    structure = onnx.load_from_string(split.structure)
    assert len(split.structure) < len(MODEL.SerializeToString()) - EXTERNAL_BYTES
    w0 = by_name(structure)["w0"]
    assert (
        w0.data_location == onnx.TensorProto.EXTERNAL and not w0.HasField("raw_data") and list(w0.dims) == [64, 3, 3, 3]
    )
    assert by_name(structure)["bn.scale"] == by_name(MODEL)["bn.scale"]
    np.testing.assert_array_equal(split.array("w0"), onnx.numpy_helper.to_array(by_name(MODEL)["w0"]))
    assert structure_of(MODEL).SerializeToString() == split.structure


@pytest.mark.parametrize("form", ["serialized", "joined"])
def test_the_model_handed_over_is_the_model(form):
    split = split_weights(MODEL)
    again = onnx.load_from_string(bytes(split.serialized())) if form == "serialized" else split.joined()
    assert by_name(again) == by_name(MODEL)  # the large initializer comes last when serialized: order aside
    assert without_initializers(again) == without_initializers(MODEL)
    onnx.checker.check_model(again)


def test_a_weight_whose_bytes_do_not_fit_its_shape_is_a_model_error():
    broken = onnx.ModelProto()
    broken.CopyFrom(MODEL)
    by_name(broken)["w0"].raw_data = by_name(broken)["w0"].raw_data[:-4]
    with pytest.raises(ModelError, match="initializer 'w0' holds 6908 bytes, its type and shape need 6912"):
        split_weights(broken)


@pytest.mark.parametrize("optimize", [False, "basic"])  # in place / copied (its optimizer reads weights from files)
def test_onnxruntime_runs_the_split_model_as_the_model(optimize):
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(
        Reference(split_weights(MODEL), optimize=optimize).run({"x": x})["y"],
        Reference(MODEL, optimize=False).run({"x": x})["y"],
        rtol=1e-5,
        atol=1e-5,
    )


def test_a_graph_made_with_its_weights_apart_runs_as_the_whole_graph():
    """A probe trtc makes (migrate.py) keeps its large weights as arrays: onnxruntime runs it on
    them in place, with the outputs of the same graph holding them, bit for bit."""
    whole = onnx.ModelProto()
    whole.CopyFrom(MODEL)
    arrays = {
        t.name: onnx.numpy_helper.to_array(t) for t in MODEL.graph.initializer if len(t.raw_data) > EXTERNAL_BYTES
    }
    apart = without_initializers(MODEL)
    apart.graph.initializer.extend(t for t in MODEL.graph.initializer if t.name not in arrays)
    split = split_from_arrays(apart, arrays)
    assert list(split.weights) == ["w0"] and split.array("w0").base is not None  # a view, not a copy
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(
        Reference(split, optimize=False).run({"x": x})["y"], Reference(whole, optimize=False).run({"x": x})["y"]
    )


@pytest.mark.parametrize("handed_over", ["serialized and freed", "by reference"])
def test_tensorrt_builds_the_split_model(handed_over):
    split = split_weights(MODEL)
    data = split.serialized()
    source = ModelSource(data=data, release=True) if handed_over == "serialized and freed" else ModelSource(split=split)
    profile = {"x": ShapeRange((1, 3, 16, 16), (2, 3, 16, 16), (2, 3, 16, 16))}
    result = build_plan(
        import_tensorrt("tensorrt-rtx"), source, BuildSettings([profile], compute_capabilities=("8.9",))
    )
    assert len(result.plan) > 0 and result.engine is not None
    assert any("conv0" in kernel.onnx_nodes for kernel in result.engine.kernels)
    if handed_over == "serialized and freed":
        with pytest.raises(ValueError, match="released"):
            len(data)  # TensorRT owns the weights once it parsed them: the build let go of its input


def test_each_weight_is_held_once_inside_the_serialization_and_aligned():
    model = onnx.ModelProto()
    model.CopyFrom(MODEL)
    rng = np.random.default_rng(0)
    for index, (dtype, size) in enumerate([(np.int8, 4099), (np.float32, 1031), (np.int8, 5003), (np.float16, 2111)]):
        values = rng.standard_normal(size).astype(dtype)
        model.graph.initializer.append(onnx.numpy_helper.from_array(values, f"odd{index}"))
    split = split_weights(model)
    whole = np.frombuffer(split.whole, np.uint8)
    start, end = whole.ctypes.data, whole.ctypes.data + whole.size
    for name in ["w0", "odd0", "odd1", "odd2", "odd3"]:
        array = split.array(name)
        assert start <= array.ctypes.data and array.ctypes.data + array.nbytes <= end  # no copy of its own
        assert array.ctypes.data % 16 == 0 and not array.flags.writeable
        np.testing.assert_array_equal(array, onnx.numpy_helper.to_array(by_name(model)[name]))
    again = onnx.load_from_string(bytes(split.serialized()))
    assert by_name(again) == by_name(model) and without_initializers(again) == without_initializers(model)

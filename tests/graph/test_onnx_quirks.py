"""ONNX files as exporters write them: placeholder dim names (`?`, tf2onnx's `unk__214`) shared
across inputs, opset imports of custom domains no node uses, the default domain spelt `ai.onnx`."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from tests import models
from trtc.graph.io import normalize_default_domain
from trtc.graph.shared_dims import separate_shared_dims
from trtc.spec.model import ShapeRange

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


def two_inputs(dims_a, dims_b, domains=()):
    """a[...] float and b[...] int32 -> two ReduceSums -> y: any shapes build."""
    nodes = [
        helper.make_node("ReduceSum", ["a"], ["ra"], name="ra", keepdims=0),
        helper.make_node("Cast", ["b"], ["bf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["bf"], ["rb"], name="rb", keepdims=0),
        helper.make_node("Add", ["ra", "rb"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "quirks",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, dims_a),
            helper.make_tensor_value_info("b", TensorProto.INT32, dims_b),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)] + [helper.make_opsetid(d, 1) for d in domains]
    )
    model.ir_version = 8
    return model


def input_profiles(report):
    return {b["name"]: b["profiles"][0] for b in report["bindings"] if b["mode"] == "Input"}


DIFFERENT_RANGES = (
    "inputs:\n  a: {min: [1, 4], opt: [2, 8], max: [4, 16]}\n  b: {min: [1, 2], opt: [2, 3], max: [4, 5]}\n"
)


@pytest.mark.parametrize("placeholder", ["?", "unk__214"])
def test_a_placeholder_shared_by_two_inputs_with_different_ranges_builds_as_given(tmp_path, placeholder):
    # Without the split TensorRT-RTX refuses the unk__214 build ("the failure starts at node 'cast'").
    report = models.build_report(tmp_path, two_inputs(["N", placeholder], ["N", placeholder]), DIFFERENT_RANGES)
    assert report["graph"]["separated_dims"] == [f"'{placeholder}' (a[1], b[1])"]
    assert input_profiles(report) == {
        "a": {"min": [1, 4], "opt": [2, 8], "max": [4, 16]},
        "b": {"min": [1, 2], "opt": [2, 3], "max": [4, 5]},
    }


def test_one_placeholder_for_every_dynamic_dim_of_two_inputs(tmp_path):
    """tf2onnx-style: unk__214 is both dims of a and the second of b; max_batch finds a's batch."""
    report = models.build_report(
        tmp_path,
        two_inputs(["unk__214", "unk__214"], [3, "unk__214"]),
        "max_batch: 4\ninputs:\n  a: {min: [1, 4], opt: [2, 8], max: [4, 16]}\n  b: {min: [3, 2], opt: [3, 3], max: [3, 5]}\n",
    )
    assert report["graph"]["separated_dims"] == ["'unk__214' (a[0], a[1], b[1])"]
    assert input_profiles(report)["b"] == {"min": [3, 2], "opt": [3, 3], "max": [3, 5]}


def test_max_batch_alone_ranges_a_shared_leading_placeholder_in_both_inputs(tmp_path):
    report = models.build_report(tmp_path, two_inputs(["unk__7", 4], ["unk__7", 6]), "max_batch: 4\n")
    assert "separated_dims" not in report["graph"]  # one range for both: the shared name stays
    assert input_profiles(report) == {
        "a": {"min": [1, 4], "opt": [4, 4], "max": [4, 4]},
        "b": {"min": [1, 6], "opt": [4, 6], "max": [4, 6]},
    }


def test_placeholders_with_equal_ranges_stay_shared():
    model = two_inputs(["unk__214", 8], ["unk__214", 8])
    same = ShapeRange(min=(1, 8), opt=(2, 8), max=(4, 8))
    assert separate_shared_dims(model, [{"a": same, "b": same}]) == []


def test_unused_custom_domain_imports_build_and_the_passes_are_verified(tmp_path):
    model = models.conv_bn_relu()
    model.opset_import.extend(
        [
            helper.make_opsetid("com.microsoft", 1),
            helper.make_opsetid("ai.onnx.ml", 3),
            helper.make_opsetid("com.example.custom", 7),
        ]
    )
    report = models.build_report(tmp_path, model, "max_batch: 4\n")
    assert report["passes"]["totals"]["changes"] >= 1  # BatchNorm folded, so onnxruntime really compared both graphs
    assert report["verification"]["status"] == "verified"
    assert report["fusion"]["kernels"]


def test_the_default_domain_spelt_ai_onnx_is_the_default_domain(tmp_path):
    model = models.conv_bn_relu()
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("ai.onnx", 17), helper.make_opsetid("com.microsoft", 1)])
    for node in model.graph.node:
        node.domain = "ai.onnx"
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    normalized = models.conv_bn_relu()
    normalized.CopyFrom(model)
    assert normalize_default_domain(normalized) == 4
    assert {op.domain for op in normalized.opset_import} == {"", "com.microsoft"}
    np.testing.assert_array_equal(ort.InferenceSession(normalized.SerializeToString()).run(None, {"x": x})[0], expected)
    report = models.build_report(tmp_path, model, "max_batch: 4\n")
    assert report["passes"]["totals"]["changes"] >= 1  # the passes now see a BatchNormalization to fold
    assert report["verification"]["status"] == "verified"

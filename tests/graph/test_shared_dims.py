"""Two inputs whose dynamic dims share one name, one of them int32: built with different ranges."""

import json

from onnx import TensorProto, helper

from tests import models
from tests.cli_runner import run
from trtc.graph.shared_dims import separate_shared_dims
from trtc.spec.model import ShapeRange


def shared_dim_model():
    nodes = [
        helper.make_node("ReduceSum", ["a"], ["ra"], name="ra", keepdims=0),
        helper.make_node("Cast", ["b"], ["bf"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["bf"], ["rb"], name="rb", keepdims=0),
        helper.make_node("Add", ["ra", "rb"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "shared",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", "T"]),
            helper.make_tensor_value_info("b", TensorProto.INT32, ["N", "T"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_equal_names_with_different_ranges_build_as_separate_dims(tmp_path):
    models.save(shared_dim_model(), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\ninputs:\n  a: {min: [1, 4], opt: [2, 8], max: [4, 16]}\n"
        "  b: {min: [1, 2], opt: [2, 3], max: [4, 5]}\ntarget: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr  # TensorRT refuses min <= common <= max without the split
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert report["graph"]["separated_dims"] == ["'T' (a[1], b[1])"]
    bindings = {b["name"]: b for b in report["bindings"]}
    assert bindings["b"]["dtype"] == "Int32" and bindings["b"]["profiles"][0]["max"] == [4, 5]


def test_equal_names_with_equal_ranges_stay_shared():
    model = shared_dim_model()
    same = ShapeRange(min=(1, 4), opt=(2, 8), max=(4, 16))
    assert separate_shared_dims(model, [{"a": same, "b": same}]) == []
    assert [d.dim_param for d in model.graph.input[1].type.tensor_type.shape.dim] == ["N", "T"]

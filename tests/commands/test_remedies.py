"""A failed build names known remedies: pin the input an If depends on; quantize in trtc."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests import models
from tests.cli_runner import run
from tests.passes.test_pin import sample_rate_model


def test_if_on_an_input_suggests_pinning_it():
    from trtc.commands.remedies import remedies

    assert remedies(sample_rate_model()) == [
        "hint: If 'outer_if' depends on input(s) sr; pin them if they are fixed in deployment: inputs: {sr: {value: ...}}"
    ]


def test_a_failed_build_with_an_ort_only_quantized_op_says_to_quantize_in_trtc(tmp_path):
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"], name="dq"),
        helper.make_node("MatMulInteger", ["q", "w", "z", "wz"], ["y"], name="mmi"),
    ]
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, ["N", 4])],
        initializer=[
            numpy_helper.from_array(np.ones((8, 4), np.uint8), "w"),
            numpy_helper.from_array(np.array(0, np.uint8), "wz"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    models.save(model, tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path, "model: model.onnx\nmax_batch: 2\nfusion: {verify: off}\ntarget: {compute_capabilities: [8.9]}\n"
    )
    result = run("build", spec)
    assert result.exit_code == 1
    assert "hint: DynamicQuantizeLinear, MatMulInteger run only in onnxruntime; export the float model" in result.stderr


def test_a_refused_node_is_said_once_without_cuda_driver_noise(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"], name="add")],
        "bad",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("b", TensorProto.INT32, ["N", 4]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    models.save(model, tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path, "model: model.onnx\nmax_batch: 2\nfusion: {verify: off}\ntarget: {compute_capabilities: [8.9]}\n"
    )
    result = run("build", spec)
    assert result.exit_code == 1
    assert result.stderr.count("node 'add' (Add)") == 1
    assert "must have same input types" in result.stderr and "cudaError" not in result.stderr


def test_a_shape_driven_if_suggests_a_fixed_shape():
    from tests.passes.test_pin import shape_driven_model
    from trtc.commands.remedies import remedies

    assert remedies(shape_driven_model()) == [
        "hint: If 'cols_if' depends on the shape of x; a fixed shape resolves it at build time: inputs: {x: {shape: [...]}}"
    ]

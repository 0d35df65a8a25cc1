"""FP16/BF16 autocast: real graphs, onnxruntime runs, what stays FP32 and why."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests import models
from tests.passes.helpers import model, outputs, weights
from trtc.precision.accuracy import OutputAccuracy, gate_failures, measure_accuracy
from trtc.precision.autocast import autocast


def feeds(seed=0, shape=(2, 3, 16, 16)):
    return [{"x": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}]


def elem_types(m):
    return {init.name: init.data_type for init in m.graph.initializer}


def test_fp16_converts_weights_keeps_io_fp32_and_runs_in_onnxruntime():
    base = models.conv_bn_relu()
    result = autocast(base, "fp16")
    assert set(result.converted) == {"conv0", "bn0", "relu0", "conv1"}
    assert elem_types(result.model)["w0"] == TensorProto.FLOAT16
    assert result.model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert result.model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert result.casts == 2  # one into the graph, one out of it
    (accuracy,) = measure_accuracy(base, result.model, feeds())
    assert accuracy.cosine > 0.9999 and accuracy.rel_l2_error < 5e-3


def test_without_keep_io_types_the_graph_io_is_fp16():
    result = autocast(models.conv_bn_relu(), "fp16", keep_io_types=False)
    assert result.model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert result.casts == 0
    out = outputs(result.model, {"x": feeds()[0]["x"].astype(np.float16)})
    assert out[0].dtype == np.float16


def test_keep_fp32_by_name_glob_and_op_type_inserts_casts_only_at_boundaries():
    result = autocast(models.conv_bn_relu(), "fp16", keep_fp32=("conv1", "BatchNorm*", "Relu"))
    assert result.converted == ["conv0"]
    assert result.kept == {
        "bn0": "precision.keep_fp32: BatchNorm*",
        "relu0": "precision.keep_fp32: Relu",
        "conv1": "precision.keep_fp32: conv1",
    }
    assert result.casts == 2  # x -> fp16 for conv0, conv0's output -> fp32 for bn0


def test_risky_ops_overflowing_weights_and_large_activations_stay_fp32():
    big = numpy_helper.from_array(np.full((1, 4), 1e5, np.float32), "big")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
        helper.make_node("Exp", ["m"], ["e"], name="exp"),
        helper.make_node("Add", ["e", "big"], ["a"], name="add_big"),
        helper.make_node("Relu", ["a"], ["y"], name="relu"),
    ]
    base = model(nodes, {"x": [2, 3]}, ["y"], [weights("w", (3, 4)), big])
    result = autocast(base, "fp16", magnitudes={"y": 1e5})
    assert result.kept["exp"] == "Exp is kept in FP32 by default"
    assert result.kept["add_big"].startswith("weight big overflows FP16")
    assert result.kept["relu"].startswith("output reaches |x| = 1e+05")
    assert result.converted == ["mm"]
    np.testing.assert_allclose(
        outputs(result.model, {"x": np.ones((2, 3), np.float32)})[0],
        outputs(base, {"x": np.ones((2, 3), np.float32)})[0],
        rtol=2e-3,
    )


def test_resize_scales_stay_fp32():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    base = model(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", mode="nearest")],
        {"x": [1, 3, 4, 4]},
        ["y"],
        [scales],
    )
    result = autocast(base, "fp16")
    assert result.converted == ["resize"] and elem_types(result.model)["scales"] == TensorProto.FLOAT
    assert outputs(result.model, {"x": np.ones((1, 3, 4, 4), np.float32)})[0].shape == (1, 3, 8, 8)


def test_bf16_weights_are_rounded_and_emulation_measures_them():
    base = models.conv_bn_relu()
    real = autocast(base, "bf16")
    assert elem_types(real.model)["w0"] == TensorProto.BFLOAT16
    weight = onnx.numpy_helper.to_array(next(i for i in real.model.graph.initializer if i.name == "w0")).astype(
        np.float32
    )
    original = onnx.numpy_helper.to_array(next(i for i in base.graph.initializer if i.name == "w0"))
    assert np.max(np.abs(weight - original) / np.abs(original)) < 2**-8  # 8 bits of mantissa, round to nearest
    emulated = autocast(base, "bf16", emulate=True).model
    (fp16_acc,) = measure_accuracy(base, autocast(base, "fp16").model, feeds())
    (bf16_acc,) = measure_accuracy(base, emulated, feeds())
    assert (
        0.999 < bf16_acc.cosine < 1.0 and bf16_acc.rel_l2_error > fp16_acc.rel_l2_error
    )  # BF16 has 3 fewer mantissa bits


def times_one():
    ones = numpy_helper.from_array(np.ones(4, np.float32), "ones")
    return model([helper.make_node("Mul", ["x", "ones"], ["y"], name="mul")], {"x": [2, 4]}, ["y"], [ones])


def test_fp16_accuracy_needs_emulation_because_onnxruntime_runs_fp16_ops_in_fp32():
    base, x = times_one(), np.array([[1000.3, -0.1234567, 3.0, 7e4], [1, 2, 3, 4]], np.float32)
    real = outputs(autocast(base, "fp16").model, {"x": x})[0]
    emulated = outputs(autocast(base, "fp16", emulate=True).model, {"x": x})[0]
    # onnxruntime's CPU run of the real FP16 graph neither rounds nor overflows: it would hide every error
    np.testing.assert_array_equal(real, x)
    assert emulated[0, 0] == np.float32(np.float16(1000.3)) != x[0, 0] and emulated[0, 1] == np.float32(
        np.float16(-0.1234567)
    )
    assert np.isinf(emulated[0, 3])  # 7e4 > 65504


def test_overflow_to_inf_fails_every_gate_and_is_counted_apart():
    base, x = times_one(), np.array([[1.0, 2.0, 3.0, 7e4]] * 2, np.float32)
    (result,) = measure_accuracy(base, autocast(base, "fp16", emulate=True).model, [{"x": x}])
    assert result.nonfinite == 2 and result.cosine > 0.9999  # the finite values agree
    assert gate_failures([result], {"max_rel_l2": 1.0}) == [
        "output 'y': 2 value(s) are Inf/NaN where FP32 is finite (overflow in reduced precision)"
    ]
    nan = OutputAccuracy("y", 2, float("nan"), float("nan"), float("nan"), float("nan"))
    assert len(gate_failures([nan], {"min_cosine": 0.9, "max_rel_l2": 1.0, "min_top1_agreement": 0.5})) == 3


def test_if_branches_read_converted_tensors_in_fp32():
    then_branch = helper.make_graph(
        [helper.make_node("Add", ["m", "m"], ["t"], name="then_add")],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["m"], ["e"], name="else_identity")],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
        helper.make_node("If", ["c"], ["y"], name="if", then_branch=then_branch, else_branch=else_branch),
    ]
    base = model(nodes, {"x": [2, 3]}, ["y"], [weights("w", (3, 4))])
    base.graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    result = autocast(base, "fp16")
    assert result.converted == ["mm"] and result.kept == {"if": "If has no reduced-precision rule"}
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    for condition in (True, False):
        feeds = {"x": x, "c": np.array(condition)}
        np.testing.assert_allclose(outputs(result.model, feeds)[0], outputs(base, feeds)[0], rtol=2e-3, atol=1e-3)


def test_float_constant_nodes_convert_like_weights_without_a_cast_each():
    # Paddle and PyTorch exporters write weights as Constant nodes as often as initializers.
    scale = numpy_helper.from_array(np.full((1, 4, 1, 1), 0.5, np.float32))
    nodes = [
        helper.make_node(
            "Constant",
            [],
            ["w"],
            name="weight",
            value=numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)),
        ),
        helper.make_node("Constant", [], ["s"], name="scale", value=scale),
        helper.make_node("Constant", [], ["axes"], name="axes", value_ints=[2, 3]),
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "s"], ["m"], name="mul"),
        helper.make_node("ReduceMax", ["m", "axes"], ["y"], name="max", keepdims=1),
    ]
    base = model(nodes, {"x": ["N", 3, 8, 8]}, ["y"], [], opset=18)
    result = autocast(base, "fp16")
    assert result.kept == {} and set(result.converted) == {"conv", "mul", "max"}
    assert elem_types(result.model)["w"] == elem_types(result.model)["s"] == TensorProto.FLOAT16
    assert [n.name for n in result.model.graph.node if n.op_type == "Constant"] == ["axes"]  # not a float: untouched
    assert result.casts == 2  # the graph input down, the output up: none per constant
    (accuracy,) = measure_accuracy(base, result.model, feeds(shape=(2, 3, 8, 8)))
    assert accuracy.cosine > 0.9999

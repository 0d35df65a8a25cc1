"""Real-shaped graphs that reproduce what breaks compilers on real models (issue 7)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def if_on_scalar_input_around_lstm(hidden: int = 8) -> onnx.ModelProto:
    """Voice-activity style: a scalar sample-rate input picks one of two networks; one is an LSTM."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((1, 4 * hidden, 4)) * 0.3).astype(np.float32), "lstm.w")
    r = numpy_helper.from_array((rng.standard_normal((1, 4 * hidden, hidden)) * 0.3).astype(np.float32), "lstm.r")
    lstm = helper.make_graph(
        [
            helper.make_node("LSTM", ["x", "lstm.w", "lstm.r"], ["seq", "last"], name="lstm", hidden_size=hidden),
            helper.make_node("Squeeze", ["last", "axis0"], ["then_out"], name="squeeze"),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)],
        initializer=[w, r, numpy_helper.from_array(np.array([0], np.int64), "axis0")],
    )
    other = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], name="mean", axes=[0], keepdims=0),
            helper.make_node("MatMul", ["m", "proj"], ["else_out"], name="proj"),
        ],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array((rng.standard_normal((4, hidden)) * 0.3).astype(np.float32), "proj")],
    )
    nodes = [
        helper.make_node("Equal", ["sr", "sr16k"], ["is16k"], name="is16k"),
        helper.make_node("If", ["is16k"], ["h"], name="choose_net", then_branch=lstm, else_branch=other),
        helper.make_node("Sigmoid", ["h"], ["prob"], name="prob"),
    ]
    graph = helper.make_graph(
        nodes,
        "vad",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [10, "batch", 4]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", hidden])],
        initializer=[numpy_helper.from_array(np.array(16000, np.int64), "sr16k")],
    )
    return _model(graph)


def wrong_declared_output_shape() -> onnx.ModelProto:
    """A CRNN-style head: the Reshape really gives [batch, 4, 6]; the model declares [batch, 6, 4]."""
    shape = numpy_helper.from_array(np.array([0, 4, 6], np.int64), "shape")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["y"], name="reshape"),
    ]
    graph = helper.make_graph(
        nodes,
        "crnn_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 24])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6, 4])],
        initializer=[shape],
    )
    return _model(graph)

"""Small real ONNX models for tests, built with onnx.helper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _weights(rng, name: str, shape) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)


def conv_bn_relu(batch="N", channels: int = 8, size: int = 16, names: bool = True, extra_nodes=()) -> onnx.ModelProto:
    """x[batch,3,size,size] -> Conv -> BatchNorm -> Relu -> Conv 1x1 -> y."""
    rng = np.random.default_rng(0)
    inits = [
        _weights(rng, "w0", (channels, 3, 3, 3)),
        numpy_helper.from_array(np.ones(channels, np.float32), "bn.scale"),
        numpy_helper.from_array(np.zeros(channels, np.float32), "bn.bias"),
        numpy_helper.from_array(np.zeros(channels, np.float32), "bn.mean"),
        numpy_helper.from_array(np.ones(channels, np.float32), "bn.var"),
        _weights(rng, "w1", (4, channels, 1, 1)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="conv0" if names else "", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization",
            ["c0", "bn.scale", "bn.bias", "bn.mean", "bn.var"],
            ["b0"],
            name="bn0" if names else "",
        ),
        helper.make_node("Relu", ["b0"], ["r0"], name="relu0" if names else ""),
        helper.make_node("Conv", ["r0", "w1"], ["y"], name="conv1" if names else ""),
        *extra_nodes,
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, size, size])]
    outputs += [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None) for n in extra_nodes]
    graph = helper.make_graph(
        nodes,
        "conv_bn_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        outputs,
        initializer=inits,
    )
    domains = {n.domain for n in extra_nodes if n.domain}
    opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def gemm_head(batch="N", features: int = 32, classes: int = 10) -> onnx.ModelProto:
    """x[batch,features] -> Gemm -> Softmax -> y: FP32 GEMM, which TensorRT-RTX cannot compile for Turing."""
    rng = np.random.default_rng(1)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="fc", transB=1),
            helper.make_node("Softmax", ["g"], ["y"], name="softmax", axis=1),
        ],
        "gemm_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, classes])],
        initializer=[_weights(rng, "w", (classes, features)), _weights(rng, "b", (classes,))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def mobilenet_like(size: int = 32, width: int = 32) -> onnx.ModelProto:
    """x[N,3,size,size] -> a MobileNet-style classifier named as exporters name it (`Conv.3`,
    `BatchNormalization.3`, `Relu.3`): a strided stem, depthwise 3x3 + pointwise 1x1 blocks with
    BatchNorm, global pooling, a 1x1 head conv, Dropout and a 1x1 classifier. At these sizes
    TensorRT-RTX runs a pointwise conv in FP16 as a GEMM and logs its metadata with a
    `__gemm_from_conv1x1` suffix."""
    rng = np.random.default_rng(2)
    nodes, inits = [], []

    def conv_bn(
        index: int, x: str, c_in: int, c_out: int, kernel: int, group: int = 1, stride: int = 1, relu: bool = True
    ) -> str:
        inits.append(_weights(rng, f"conv{index}.weight", (c_out, c_in // group, kernel, kernel)))
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"conv{index}.weight"],
                [f"conv{index}.out"],
                name=f"Conv.{index}",
                group=group,
                strides=[stride, stride],
                pads=[kernel // 2] * 4,
            )
        )
        for key, values in (
            ("scale", 1 + 0.1 * rng.standard_normal(c_out)),
            ("bias", 0.1 * rng.standard_normal(c_out)),
            ("mean", 0.1 * rng.standard_normal(c_out)),
            ("var", 1 + 0.1 * np.abs(rng.standard_normal(c_out))),
        ):
            inits.append(numpy_helper.from_array(values.astype(np.float32), f"bn{index}.{key}"))
        bn_inputs = [f"conv{index}.out", *(f"bn{index}.{key}" for key in ("scale", "bias", "mean", "var"))]
        nodes.append(
            helper.make_node("BatchNormalization", bn_inputs, [f"bn{index}.out"], name=f"BatchNormalization.{index}")
        )
        if not relu:
            return f"bn{index}.out"
        nodes.append(helper.make_node("Relu", [f"bn{index}.out"], [f"relu{index}.out"], name=f"Relu.{index}"))
        return f"relu{index}.out"

    x, channels = conv_bn(0, "x", 3, width, 3, stride=2), width
    for block in range(1, 5):
        x = conv_bn(2 * block - 1, x, channels, channels, 3, group=channels, stride=2 if block % 2 else 1)
        x = conv_bn(2 * block, x, channels, 2 * channels, 1, relu=block % 2 == 1)
        channels *= 2
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="GlobalAveragePool.0"))
    x = conv_bn(18, "pooled", channels, 128, 1)
    inits += [_weights(rng, "classifier.weight", (10, 128, 1, 1)), _weights(rng, "classifier.bias", (10,))]
    nodes += [
        helper.make_node("Dropout", [x], ["dropped"], name="Dropout.0"),
        helper.make_node("Conv", ["dropped", "classifier.weight", "classifier.bias"], ["logits"], name="Conv.19"),
        helper.make_node("Flatten", ["logits"], ["y"], name="Flatten.0"),
    ]
    graph = helper.make_graph(
        nodes,
        "mobilenet_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def odd_names() -> onnx.ModelProto:
    """conv_bn_relu and a Sigmoid, Add after it, with node names that contain what TensorRT's
    metadata uses as syntax: `+`, brackets, spaces, a newline, `[ONNX Layer: ` and `, Key: `."""
    model = conv_bn_relu(
        extra_nodes=[helper.make_node("Sigmoid", ["y"], ["s"]), helper.make_node("Add", ["s", "y"], ["z"])]
    )
    for node, name in zip(model.graph.node, ODD_NAMES):
        node.name = name
    return model


ODD_NAMES = ("conv a+b", "bn]x", "relu [0]", "line\nbreak", "[ONNX Layer: evil]", "sig, Metadata: z")


def with_unsupported_ops() -> onnx.ModelProto:
    """Two nodes of a custom domain that TensorRT has no importer or plugin for."""
    extra = [
        helper.make_node("Frobnicate", ["y"], ["f1"], name="frob1", domain="com.example"),
        helper.make_node("Frobnicate", ["f1"], ["f2"], name="frob2", domain="com.example"),
    ]
    return conv_bn_relu(extra_nodes=extra)


def conv_chain(count: int, channels: int = 8, size: int = 16, gemm_head: bool = False) -> onnx.ModelProto:
    """x[N,channels,size,size] -> `count` x (Conv 3x3 -> Relu) -> y, with an Identity after the first
    Relu (a change for the graph passes to verify): every build phase of it lasts long enough to
    be interrupted (1,000 convolutions: about 10 s of TensorRT-RTX). `gemm_head`: a Flatten and
    an FP32 Gemm at the end, which TensorRT-RTX cannot build for sm 7.5 (a builder failure)."""
    rng = np.random.default_rng(2)
    nodes, inits, x = [], [], "x"
    for i in range(count):
        inits.append(_weights(rng, f"w{i}", (channels, channels, 3, 3)))
        nodes += [
            helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"),
        ]
        x = f"r{i}"
        if i == 0:
            nodes.append(helper.make_node("Identity", [x], ["copy"], name="identity"))
            x = "copy"
    shape = ["N", channels, size, size]
    if gemm_head:
        inits.append(_weights(rng, "head.w", (channels * size * size, 10)))
        nodes += [
            helper.make_node("Flatten", [x], ["flat"], name="flatten"),
            helper.make_node("Gemm", ["flat", "head.w"], ["g"], name="head"),
        ]
        x, shape = "g", ["N", 10]
    graph = helper.make_graph(
        nodes,
        "conv_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def build(folder: Path, model: onnx.ModelProto, spec_text: str, *args: str):
    """Save `model` as folder/model.onnx, build it with a spec of `spec_text` between the model line
    and an sm 8.9 target; the CLI result and the report (None unless the build succeeded)."""
    from trtc.cli import main

    save(model, folder / "model.onnx")
    spec = write_spec(folder, "model: model.onnx\n" + spec_text + "target: {compute_capabilities: [8.9]}\n")
    result = CliRunner().invoke(main, ["build", str(spec), *args])
    report = folder / "build" / "spec.report.json"
    return result, (json.loads(report.read_text()) if result.exit_code == 0 and report.exists() else None)


def build_report(folder: Path, model: onnx.ModelProto, spec_text: str, *args: str) -> dict:
    """`build` that must succeed: its report."""
    result, report = build(folder, model, spec_text, *args)
    assert result.exit_code == 0, result.stderr
    return report


def renamed(model: onnx.ModelProto, names: dict[str, str]) -> onnx.ModelProto:
    """`model` with its nodes and tensors (inputs, outputs, intermediates) renamed by `names`."""
    for node in model.graph.node:
        node.name = names.get(node.name, node.name)
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        value.name = names.get(value.name, value.name)
    return model

"""Regenerate models/demo.onnx, the bundled demo, byte for byte.

A small detector-shaped CNN that exercises what trtc reports:
- Conv + BatchNormalization + ReLU blocks (BatchNorm folding, vertical fusion),
- a residual block whose Add can fuse into the second convolution's epilogue,
- three parallel 1x1 output convolutions on one feature map, like YOLOv3's heads (horizontal
  merging into one wider layer),
- a classification branch (global average pool, Gemm, Softmax).

Usage: python scripts/make_demo_model.py [output path]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20261125
OPSET = 17


class _GraphBuilder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def weight(self, name: str, shape: tuple[int, ...], scale: float = 1.0) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        values = self.rng.standard_normal(shape).astype(np.float32) * np.float32(scale / np.sqrt(fan_in))
        self.initializers.append(numpy_helper.from_array(values, name))
        return name

    def conv(self, name: str, x: str, c_in: int, c_out: int, kernel: int, stride: int = 1, bias: bool = False) -> str:
        inputs = [x, self.weight(f"{name}.weight", (c_out, c_in, kernel, kernel))]
        if bias:
            inputs.append(self.weight(f"{name}.bias", (c_out,), scale=0.1))
        pad = kernel // 2
        self.nodes.append(helper.make_node("Conv", inputs, [f"{name}.out"], name=name, kernel_shape=[kernel, kernel],
                                           strides=[stride, stride], pads=[pad] * 4))
        return f"{name}.out"

    def batchnorm(self, name: str, x: str, channels: int) -> str:
        params = {
            "scale": 1.0 + 0.1 * self.rng.standard_normal(channels),
            "bias": 0.1 * self.rng.standard_normal(channels),
            "mean": 0.1 * self.rng.standard_normal(channels),
            "var": 1.0 + 0.1 * np.abs(self.rng.standard_normal(channels)),
        }
        names = []
        for key, values in params.items():
            self.initializers.append(numpy_helper.from_array(values.astype(np.float32), f"{name}.{key}"))
            names.append(f"{name}.{key}")
        self.nodes.append(helper.make_node("BatchNormalization", [x, *names], [f"{name}.out"], name=name, epsilon=1e-5))
        return f"{name}.out"

    def op(self, op_type: str, name: str, inputs: list[str], **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [f"{name}.out"], name=name, **attrs))
        return f"{name}.out"

    def conv_bn_relu(self, name: str, x: str, c_in: int, c_out: int, kernel: int, stride: int = 1) -> str:
        y = self.conv(f"{name}.conv", x, c_in, c_out, kernel, stride)
        y = self.batchnorm(f"{name}.bn", y, c_out)
        return self.op("Relu", f"{name}.relu", [y])


def build_demo_model() -> onnx.ModelProto:
    g = _GraphBuilder(SEED)
    x = g.conv_bn_relu("stem", "images", 3, 16, 3, stride=2)           # 16 x 32 x 32
    x = g.conv_bn_relu("down", x, 16, 32, 3, stride=2)                   # 32 x 16 x 16
    # Residual block: relu(bn(conv(relu(bn(conv(x))))) + x)
    r = g.conv_bn_relu("res.a", x, 32, 32, 3)
    r = g.batchnorm("res.b.bn", g.conv("res.b.conv", r, 32, 32, 3), 32)
    x = g.op("Relu", "res.relu", [g.op("Add", "res.add", [r, x])])
    # Three detection heads: parallel 1x1 convolutions with bias on one feature map.
    heads = [g.conv(f"head{i}", x, 32, 18, 1, bias=True) for i in range(3)]
    # Classification branch.
    pooled = g.op("GlobalAveragePool", "gap", [x])
    flat = g.op("Flatten", "flatten", [pooled], axis=1)
    logits = g.op("Gemm", "fc", [flat, g.weight("fc.weight", (10, 32)), g.weight("fc.bias", (10,), scale=0.1)], transB=1)
    g.op("Softmax", "softmax", [logits], axis=1)

    outputs = [helper.make_tensor_value_info(h, TensorProto.FLOAT, ["batch", 18, 16, 16]) for h in heads]
    outputs.append(helper.make_tensor_value_info("softmax.out", TensorProto.FLOAT, ["batch", 10]))
    graph = helper.make_graph(
        g.nodes, "trtc_demo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        outputs, initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="trtc-demo")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "models" / "demo.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(build_demo_model().SerializeToString())
    print(f"wrote {target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

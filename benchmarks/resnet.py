"""A ResNet-50-shaped ONNX model with random weights (about 25.5 M parameters, 102 MB), built
deterministically for benchmarks: the real architecture's layers and shapes, no trained weights.
`width` scales every layer's channels: 0.125 gives the same 175 nodes in 2.6 MB."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # width, blocks, first stride
EXPANSION = 4


class _Net:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def _init(self, name, values):
        self.inits.append(numpy_helper.from_array(values.astype(np.float32), name))
        return name

    def conv_bn(self, name, x, c_in, c_out, kernel, stride=1, relu=True):
        fan_in = c_in * kernel * kernel
        w = self._init(f"{name}.w", self.rng.standard_normal((c_out, c_in, kernel, kernel)) * np.sqrt(2.0 / fan_in))
        pad = kernel // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, w],
                [f"{name}.c"],
                name=f"{name}.conv",
                kernel_shape=[kernel] * 2,
                strides=[stride] * 2,
                pads=[pad] * 4,
            )
        )
        bn = [
            self._init(f"{name}.{k}", v)
            for k, v in (
                ("gamma", 1 + 0.1 * self.rng.standard_normal(c_out)),
                ("beta", 0.1 * self.rng.standard_normal(c_out)),
                ("mean", 0.1 * self.rng.standard_normal(c_out)),
                ("var", 1 + 0.1 * np.abs(self.rng.standard_normal(c_out))),
            )
        ]
        self.nodes.append(helper.make_node("BatchNormalization", [f"{name}.c", *bn], [f"{name}.b"], name=f"{name}.bn"))
        if not relu:
            return f"{name}.b"
        self.nodes.append(helper.make_node("Relu", [f"{name}.b"], [f"{name}.r"], name=f"{name}.relu"))
        return f"{name}.r"

    def bottleneck(self, name, x, c_in, width, stride):
        c_out = width * EXPANSION
        y = self.conv_bn(f"{name}.a", x, c_in, width, 1)
        y = self.conv_bn(f"{name}.b", y, width, width, 3, stride)
        y = self.conv_bn(f"{name}.c", y, width, c_out, 1, relu=False)
        shortcut = (
            x
            if (stride == 1 and c_in == c_out)
            else self.conv_bn(f"{name}.down", x, c_in, c_out, 1, stride, relu=False)
        )
        self.nodes.append(helper.make_node("Add", [y, shortcut], [f"{name}.sum"], name=f"{name}.add"))
        self.nodes.append(helper.make_node("Relu", [f"{name}.sum"], [f"{name}.out"], name=f"{name}.relu"))
        return f"{name}.out", c_out


def resnet50_like(seed: int = 50, image: int = 224, classes: int = 1000, width: float = 1.0) -> onnx.ModelProto:
    net = _Net(seed)
    stem = int(64 * width)
    x = net.conv_bn("stem", "input", 3, stem, 7, 2)
    net.nodes.append(
        helper.make_node("MaxPool", [x], ["pool"], name="maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    )
    x, channels = "pool", stem
    for stage, (stage_width, blocks, stride) in enumerate(STAGES):
        for block in range(blocks):
            x, channels = net.bottleneck(
                f"layer{stage + 1}.{block}", x, channels, int(stage_width * width), stride if block == 0 else 1
            )
    net.nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    net.nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"))
    w = net._init("fc.w", net.rng.standard_normal((classes, channels)) * 0.01)
    b = net._init("fc.b", np.zeros(classes))
    net.nodes.append(helper.make_node("Gemm", ["flat", w, b], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        net.nodes,
        "resnet50_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, image, image])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=net.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


if __name__ == "__main__":
    import sys

    onnx.save(resnet50_like(), sys.argv[1] if len(sys.argv) > 1 else "resnet50_like.onnx")

"""Run a pass, and prove it kept the function: onnxruntime before vs after on random inputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from trtc.passes import PassContext, run_passes


def apply(model: onnx.ModelProto, graph_pass, exclude=()) -> tuple[onnx.ModelProto, list]:
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    runs = run_passes(rewritten, [graph_pass], PassContext(exclude=frozenset(exclude)))
    assert_well_formed(rewritten.graph)
    return rewritten, [change for run in runs for change in run.changes]


def assert_well_formed(graph: onnx.GraphProto) -> None:
    """Topologically sorted, every input defined, every node named uniquely."""
    known = {v.name for v in graph.input} | {i.name for i in graph.initializer} | {""}
    names = [n.name for n in graph.node]
    assert len(names) == len(set(names)) and all(names)
    for node in graph.node:
        missing = [name for name in node.input if name not in known]
        assert not missing, f"{node.name} reads {missing} before they are produced"
        known.update(node.output)
    assert all(v.name in known for v in graph.output)


def outputs(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_same_function(before: onnx.ModelProto, after: onnx.ModelProto, shapes: list[dict[str, tuple]]) -> None:
    rng = np.random.default_rng(7)
    for shape in shapes:
        feeds = {name: rng.standard_normal(dims).astype(np.float32) for name, dims in shape.items()}
        for expected, actual in zip(outputs(before, feeds), outputs(after, feeds), strict=True):
            assert expected.shape == actual.shape
            error = np.linalg.norm(expected - actual) / max(np.linalg.norm(expected), 1e-30)
            assert error < 1e-5, f"relative L2 error {error}"


def weights(name: str, shape, seed: int = 0, scale: float = 0.3) -> onnx.TensorProto:
    return numpy_helper.from_array(
        (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32), name
    )


def batchnorm_params(prefix: str, channels: int, seed: int = 1) -> list[onnx.TensorProto]:
    rng = np.random.default_rng(seed)
    values = {
        "scale": 1 + 0.2 * rng.standard_normal(channels),
        "bias": 0.2 * rng.standard_normal(channels),
        "mean": 0.2 * rng.standard_normal(channels),
        "var": 1 + 0.3 * np.abs(rng.standard_normal(channels)),
    }
    return [numpy_helper.from_array(v.astype(np.float32), f"{prefix}.{k}") for k, v in values.items()]


def model(nodes, inputs: dict[str, list], outputs_: list[str], initializers=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n, dims in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs_],
        initializer=list(initializers),
    )
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    built.ir_version = 8
    return built

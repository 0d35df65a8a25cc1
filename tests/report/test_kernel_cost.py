"""Kernel costs and the roofline on a real TensorRT-RTX build of the demo."""

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests import models
from tests.cli_runner import run
from trtc.errors import SpecError
from trtc.report.kernel_cost import choose_gpu, cost_section, gpu_table

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


def test_demo_kernel_costs_and_roofline(demo_copy):
    assert run("build", demo_copy, "--set", "target.gpu=RTX 4090").exit_code == 0
    report = json.loads((demo_copy.parent / "build" / "demo.report.json").read_text())
    cost, kernels = report["cost"], report["fusion"]["kernels"]
    nodes = {n["name"]: n for n in cost["nodes"]}
    # The stem convolution kernel: the FLOPs of the nodes it covers in the graph TensorRT parsed,
    # where trtc folded the BatchNorm into the Conv (the bias costs no FLOPs): Conv + Relu ...
    stem = next(k for k in kernels if "stem.conv" in k["onnx_nodes"])
    assert stem["built_nodes"] == ["stem.conv+stem.bn", "stem.relu"]
    assert stem["flops"] == nodes["stem.conv"]["flops"] + nodes["stem.relu"]["flops"]
    assert cost["onnx_model"]["flops"] - cost["before_fusion"]["flops"] == sum(
        n["flops"] for n in nodes.values() if n["op_type"] == "BatchNormalization"
    )
    assert nodes["stem.conv"]["flops"] == 32 * 16 * 32 * 32 * 3 * 3 * 3  # opt batch 32, 16 x 32 x 32 output
    # ... and the bytes of its real tensors: every kernel's MAC is known for a dynamic batch.
    assert all(isinstance(k["mac_bytes"], int) for k in kernels)
    assert cost["after_fusion"]["flops"] == sum(k["flops"] for k in kernels)
    assert cost["after_fusion"]["mac_bytes"] < cost["before_fusion"]["mac_bytes"]
    assert cost["mac_saved_bytes"] == cost["before_fusion"]["mac_bytes"] - cost["after_fusion"]["mac_bytes"]
    assert cost["gpu"]["name"] == "RTX 4090"
    bandwidth = cost["gpu"]["bandwidth_gbs"] * 1e9
    for kernel in kernels:
        memory_us = kernel["mac_bytes"] / bandwidth * 1e6
        compute_us = 2 * kernel["flops"] / (cost["gpu"]["tflops"]["fp32"] * 1e12) * 1e6
        assert kernel["estimated_us"] == pytest.approx(max(memory_us, compute_us), abs=1e-4)
        assert kernel["bound"] == ("compute" if compute_us > memory_us else "memory")


def test_fusion_saving_is_measured_at_the_built_precision(demo_copy):
    # In an FP16 build the graph TensorRT parses moves half the bytes of the FP32 model: that is
    # precision's saving, not fusion's, so "before fusion" is that graph at its own datatypes.
    assert run("build", demo_copy, "--set", "precision=fp16").exit_code == 0
    cost = json.loads((demo_copy.parent / "build" / "demo.report.json").read_text())["cost"]
    given, before, after = (
        cost["onnx_model"]["mac_bytes"],
        cost["before_fusion"]["mac_bytes"],
        cost["after_fusion"]["mac_bytes"],
    )
    assert after < before < 0.6 * given
    assert cost["mac_saved_percent"] == round(100 * (before - after) / before, 2)


def test_gpu_choice_by_name_or_capability():
    assert choose_gpu(None, ("8.6",))["name"] == "RTX 3090"
    assert choose_gpu(None, ("12.0",))["name"] == "RTX 5090"
    assert choose_gpu("h100", ())["bandwidth_gbs"] == 3350
    assert choose_gpu(None, ("7.5",)) is None
    with pytest.raises(
        SpecError,
        match=r"^target.gpu: unknown GPU 'RTX 4080'; did you mean 'RTX 4090'\? \(known: RTX 3090, RTX 4090, RTX 5090, A100, H100, L4\)$",
    ):
        choose_gpu("RTX 4080", ())
    with pytest.raises(SpecError, match=r"^target.gpu: unknown GPU 'Titan' \(known: RTX 3090, "):
        choose_gpu("Titan", ())
    assert all(gpu["source"] and gpu["url"].startswith("https://") for gpu in gpu_table()["gpus"])


def _attention_like(folder):
    """x[B, S, 64] -> MatMul + bias + Relu -> r @ r^T -> Softmax: batch and sequence both dynamic."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "b"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["t"], name="tr", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["r", "t"], ["s"], name="scores"),
        helper.make_node("Softmax", ["s"], ["y"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    models.save(model, folder / "attention.onnx")
    return models.write_spec(
        folder,
        "model: attention.onnx\ninputs:\n  x: {min: [1, 1, 64], opt: [4, 16, 64], max: [8, 32, 64]}\n"
        "workspace: 256MiB\ntarget:\n  gpu: H100\noutput:\n  plan: build/a.plan\n  report: build/a.json\n",
    )


def test_dynamic_dims_with_different_opt_values(tmp_path):
    # TensorRT flattens x to [-1, 64]: the kernel's tensors named after ONNX tensors take their
    # element count at opt (4 x 16 x 64); TensorRT-internal tensors stay unknown and the build
    # still reports (no total rather than a partial one).
    result = run("build", _attention_like(tmp_path))
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "build" / "a.json").read_text())
    cost, kernels = report["cost"], report["fusion"]["kernels"]
    first = next(k for k in kernels if "mm" in k["onnx_nodes"])
    assert first["mac_bytes"] == 4 * (2 * 4 * 16 * 64 + 64 + 64 * 64)  # x and r, the bias, the weights
    assert cost["unresolved_kernels"] == [k["index"] for k in kernels if k["mac_bytes"] is None]
    if cost["unresolved_kernels"]:
        assert cost["after_fusion"]["mac_bytes"] is None and cost["estimated_total_us"] is None
        assert "kernel(s) have dynamic sizes trtc cannot resolve" in (tmp_path / "build" / "a.report.md").read_text()


def test_kernel_sizes_from_onnx_names_the_profile_value_or_unknown():
    def kernel(*tensors):
        return {
            "index": 0,
            "onnx_nodes": [],
            "precision": "Half",
            "constants": [],
            "outputs": [],
            "inputs": [{"name": name, "dims": dims, "dtype": "Half"} for name, dims in tensors],
        }

    fusion = {
        "kernels": [kernel(("r.1_myl0", [-1, 64])), kernel(("__mye12_myl0", [-1, 3, -1])), kernel(("w", [64, 64]))]
    }
    cost_section(fusion, {}, None, None, {"r": 4096})
    assert [k["mac_bytes"] for k in fusion["kernels"]] == [2 * 4096, None, 2 * 4096]
    cost_section(fusion, {}, None, 8, {"r": 4096})
    assert [k["mac_bytes"] for k in fusion["kernels"]] == [2 * 4096, 2 * 8 * 3 * 8, 2 * 4096]

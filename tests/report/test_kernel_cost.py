"""Kernel costs and the roofline on a real TensorRT-RTX build of the demo."""

import json

import pytest

from tests.cli.test_build_cli import run
from trtc.errors import SpecError
from trtc.report.cost import choose_gpu, gpu_table


def test_demo_kernel_costs_and_roofline(demo_copy):
    assert run("build", demo_copy, "--set", "target.gpu=RTX 4090").exit_code == 0
    report = json.loads((demo_copy.parent / "build" / "demo.report.json").read_text())
    cost, kernels = report["cost"], report["fusion"]["kernels"]
    nodes = {n["name"]: n for n in cost["nodes"]}
    # The stem convolution kernel: the FLOPs of the ONNX nodes it covers (Conv + BatchNorm + Relu) ...
    stem = next(k for k in kernels if "stem.conv" in k["onnx_nodes"])
    assert stem["flops"] == sum(nodes[n]["flops"] for n in ("stem.conv", "stem.bn", "stem.relu"))
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


def test_gpu_choice_by_name_or_capability():
    assert choose_gpu(None, ("8.6",))["name"] == "RTX 3090"
    assert choose_gpu(None, ("12.0",))["name"] == "RTX 5090"
    assert choose_gpu("h100", ())["bandwidth_gbs"] == 3350
    assert choose_gpu(None, ("7.5",)) is None
    with pytest.raises(SpecError, match=r"target.gpu: unknown GPU 'RTX 4080'; did you mean 'RTX 4090'\?"):
        choose_gpu("RTX 4080", ())
    assert all(gpu["source"] and gpu["url"].startswith("https://") for gpu in gpu_table()["gpus"])

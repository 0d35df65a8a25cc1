"""Real TensorRT-RTX builds (no GPU needed): plans, fusion facts, refused nodes, failures."""

from __future__ import annotations

import pytest

from tests import models
from trtc.backend.builder import BuildSettings, ModelSource, build_plan
from trtc.backend.inspector import inspect_plan
from trtc.backend.trt_import import import_tensorrt
from trtc.errors import BackendUnavailableError, BuildError, GpuUnavailableError, SpecError, UnsupportedModelError
from trtc.spec.model import ShapeRange

RANGE = {"x": ShapeRange((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))}


@pytest.fixture(scope="module")
def rtx():
    return import_tensorrt("tensorrt-rtx")


def _build(rtx, model, **settings):
    defaults = {"profiles": [RANGE], "compute_capabilities": ("8.9",)}
    return build_plan(rtx, ModelSource(data=model.SerializeToString()), BuildSettings(**{**defaults, **settings}))


class Phases:
    def __init__(self):
        self.started, self.finished = [], []

    def phase_start(self, name, parent, steps):
        self.started.append((name, parent))

    def phase_step(self, name, step):
        pass

    def phase_finish(self, name):
        self.finished.append(name)


def test_conv_bn_relu_become_one_kernel(rtx):
    result = _build(rtx, models.conv_bn_relu())
    assert len(result.plan) > 10_000
    fused = [k for k in result.engine.compute_kernels if "conv0" in k.onnx_nodes]
    assert len(fused) == 1 and fused[0].onnx_nodes == ("conv0", "bn0", "relu0")
    assert fused[0].precision == "Float"
    binding = result.engine.bindings[0]
    assert binding.name == "x" and binding.profiles[0].max == (8, 3, 16, 16)


def test_progress_monitor_reports_tensorrt_phases(rtx):
    phases = Phases()
    build_plan(
        rtx,
        ModelSource(data=models.conv_bn_relu().SerializeToString()),
        BuildSettings(profiles=[RANGE], compute_capabilities=("8.9",)),
        phases,
    )
    assert phases.started[0] == ("Building engine", None)
    assert sorted(phases.finished) == sorted(name for name, _ in phases.started)


def test_every_unsupported_node_is_listed(rtx):
    with pytest.raises(UnsupportedModelError) as caught:
        _build(rtx, models.with_unsupported_ops())
    assert caught.value.message.startswith("TensorRT's ONNX parser refused 2 node(s): node 'frob1' (Frobnicate):")
    assert [line.split(":")[0] for line in caught.value.details] == [
        "node 'frob1' (Frobnicate)",
        "node 'frob2' (Frobnicate)",
    ]
    assert caught.value.exit_code == 1


def test_builder_failure_carries_tensorrt_message_and_log(rtx):
    # TensorRT-RTX has no FP32 GEMM for Turing: a real builder failure.
    gemm_range = {"x": ShapeRange((1, 32), (4, 32), (8, 32))}
    with pytest.raises(BuildError) as caught:
        _build(rtx, models.gemm_head(), profiles=[gemm_range], compute_capabilities=("7.5",))
    assert "failed to build the engine" in caught.value.message
    assert any(severity == "ERROR" for severity, _ in caught.value.log)


def test_unknown_compute_capability_names_the_valid_ones(rtx):
    with pytest.raises(SpecError, match=r"cannot target 9.0; it supports 7.5, 8.0, 8.6, 8.9, 12.0"):
        _build(rtx, models.conv_bn_relu(), compute_capabilities=("9.0",))


def test_timing_cache_is_declined_with_a_warning_on_rtx(rtx):
    # TensorRT-RTX makes timing cache operations no-ops; trtc says so instead of writing a dummy.
    result = _build(rtx, models.conv_bn_relu(), timing_cache=b"")
    assert result.timing_cache is None
    assert result.warnings == [
        "target.timing_cache: tensorrt-rtx has no timing cache (its cache operations are no-ops); ignored"
    ]


def test_engine_inspector_says_it_needs_a_gpu(rtx):
    # No development or CI machine has a GPU: the inspector must refuse clearly, exit code 1.
    plan = _build(rtx, models.conv_bn_relu()).plan
    with pytest.raises(GpuUnavailableError) as caught:
        inspect_plan(rtx, plan)
    assert caught.value.message.startswith(
        "tensorrt-rtx cannot load the plan on this machine: it needs a GPU it supports"
    )
    assert caught.value.exit_code == 1


def test_missing_backend_says_how_to_install():
    with pytest.raises(
        BackendUnavailableError, match=r"target.backend is 'tensorrt' but it does not import: `pip install tensorrt`"
    ):
        import_tensorrt("tensorrt")

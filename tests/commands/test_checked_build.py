"""TensorRT builds while trtc checks: the onnxruntime checks run beside the build in another
thread; a change that verification drops still makes the plan come from the graph without it;
an interrupt stops the checks and writes nothing; and the model is serialized once, for TensorRT,
while onnxruntime runs on the same weights in place."""

from __future__ import annotations

import builtins
import io
import json
import sys
import threading
import time

import onnx
import pytest

import trtc.backend.builder as builder
import trtc.commands.pipeline  # noqa: F401 - imported before `patch_build_plan` patches its name
from tests import models
from tests.cli_runner import run
from tests.pass_registry import register_pass
from trtc.graph.graph_index import GraphIndex
from trtc.graph.reference import Reference
from trtc.passes.base import Change

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

SPEC = "max_batch: 4\n"


def patch_build_plan(monkeypatch, replacement) -> None:
    """`build_plan` as the pipeline calls it (by its own name in each module that imports it)."""
    for module in ("trtc.commands.pipeline", "trtc.commands.checked_build"):
        if module in sys.modules:
            monkeypatch.setattr(sys.modules[module], "build_plan", replacement, raising=False)


def test_onnxruntime_checks_run_while_tensorrt_builds(tmp_path, monkeypatch):
    building = threading.Event()
    real_build, real_start = builder.build_plan, Reference.__init__
    started_in: list[str] = []

    def build_plan(*args, **kwargs):
        building.set()
        return real_build(*args, **kwargs)

    def start_session(self, *args, **kwargs):
        started_in.append(threading.current_thread().name)
        # Before the build started, this waits in vain: the checks would be holding the build up.
        assert building.wait(30), "an onnxruntime check ran before TensorRT's build started"
        real_start(self, *args, **kwargs)

    patch_build_plan(monkeypatch, build_plan)
    monkeypatch.setattr(Reference, "__init__", start_session)
    report = models.build_report(tmp_path, models.conv_bn_relu(channels=64), SPEC)
    assert report["verification"]["status"] == "verified"
    assert report["output_shapes"]["outputs"][0]["onnxruntime"] == [1, 4, 16, 16]
    assert started_in and "MainThread" not in started_in


class RenameAndDouble:
    """A broken pass: doubles conv1's weights and renames the node, so a plan built from its
    graph names 'conv1.broken' in TensorRT's layer metadata."""

    name = "broken-fold"
    description = "test double"

    def run(self, model, context):
        index = GraphIndex(model.graph)
        for node in model.graph.node:
            if node.name == "conv1" and "conv1" not in context.exclude:
                node.input[1] = index.add_initializer("w1.doubled", index.constant(node.input[1]) * 2)
                node.name = "conv1.broken"
                return [Change(self.name, "fold", ("conv1",), ("conv1.broken",), "pretends to fold")]
        return []


def node_names(source) -> list[str]:
    """The node names of the graph TensorRT was given, however it was given."""
    split = getattr(source, "split", None)
    if split is not None:
        model = onnx.load_from_string(split.structure)
    elif source.data is not None:
        model = onnx.load_from_string(bytes(source.data))
    else:
        model = onnx.load(str(source.path), load_external_data=False)
    return [node.name for node in model.graph.node]


def test_a_change_verification_drops_beside_the_build_is_not_in_the_plan(tmp_path, monkeypatch):
    register_pass(monkeypatch, "broken-fold", RenameAndDouble)
    real_build = builder.build_plan
    builds: list[tuple[list[str], bytes]] = []

    def build_plan(trt, source, *args, **kwargs):
        names = node_names(source)  # before the build: it may free what it parsed
        result = real_build(trt, source, *args, **kwargs)
        builds.append((names, bytes(result.plan)))
        return result

    patch_build_plan(monkeypatch, build_plan)
    result, report = models.build(
        tmp_path, models.conv_bn_relu(channels=64), SPEC + "fusion: {passes: [fold-batchnorm, broken-fold]}\n"
    )
    assert result.exit_code == 0, result.stderr
    assert "verification: dropped the broken-fold change on conv1" in result.stderr
    assert report["verification"]["status"] == "repaired"
    assert [c["pass_name"] for c in report["passes"]["changes"]] == ["fold-batchnorm"]
    built_nodes, plan = builds[-1]
    assert "conv1" in built_nodes and "conv1.broken" not in built_nodes and "conv0+bn0" in built_nodes
    assert (tmp_path / "build" / "spec.plan").read_bytes() == plan  # the plan written is the last build's
    assert "conv1.broken" not in (tmp_path / "build" / "spec.build.log").read_text()
    assert not any("conv1.broken" in kernel["built_nodes"] for kernel in report["fusion"]["kernels"])


def test_a_strict_verification_beside_the_build_fails_it_without_a_diagnosis(tmp_path, monkeypatch):
    register_pass(monkeypatch, "broken-fold", RenameAndDouble)
    result, _ = models.build(
        tmp_path,
        models.conv_bn_relu(channels=64),
        SPEC + "fusion: {passes: [fold-batchnorm, broken-fold], verify: strict}\n",
    )
    assert result.exit_code == 1
    assert "error: graph passes changed the model's outputs (output 'y' differs" in result.stderr
    assert "diagnosing" not in result.stderr and not (tmp_path / "build").exists()


def test_an_interrupt_during_the_build_stops_the_checks_and_writes_nothing(tmp_path, monkeypatch):
    def build_plan(*args, **kwargs):
        raise KeyboardInterrupt

    patch_build_plan(monkeypatch, build_plan)
    models.save(models.conv_bn_relu(channels=64), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\n" + SPEC + "target: {compute_capabilities: [8.9]}\n")
    result = run("build", spec)
    assert result.exit_code == 130
    assert "nothing was written" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "spec.yaml"]
    deadline = time.monotonic() + 30
    while any(t.name == "trtc-checks" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "trtc-checks" for t in threading.enumerate())


def test_the_model_is_serialized_once_for_tensorrt_and_onnxruntime_runs_on_the_same_weights(tmp_path, monkeypatch):
    from trtc.graph.weights import SplitModel

    model = models.conv_bn_relu(channels=64)
    largest = max(len(init.raw_data) for init in model.graph.initializer)
    models.save(model, tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\n" + SPEC + "target: {compute_capabilities: [8.9]}\n")
    serialized: list[str] = []
    real_serialized, real_start = SplitModel.serialized, Reference.__init__
    given: list[object] = []

    def profile(frame, event, arg):
        if (
            event == "c_call"
            and getattr(arg, "__name__", "") == "SerializeToString"
            and isinstance(getattr(arg, "__self__", None), onnx.ModelProto)
        ):
            if arg.__self__.ByteSize() >= largest:  # a serialization that holds a weight
                serialized.append("SerializeToString")

    def counting_serialized(self):
        serialized.append("SplitModel.serialized")
        return real_serialized(self)

    def start_session(self, model, *args, **kwargs):
        given.append(model)
        real_start(self, model, *args, **kwargs)

    monkeypatch.setattr(SplitModel, "serialized", counting_serialized)
    monkeypatch.setattr(Reference, "__init__", start_session)
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        result = run("build", spec)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    assert result.exit_code == 0, result.stderr
    assert serialized == ["SplitModel.serialized"]  # TensorRT's copy, made once
    assert any(isinstance(model, SplitModel) for model in given)  # the rewritten graph ran on the split's weights


def test_a_forced_build_reads_the_model_once_and_a_rebuild_fingerprints_once(tmp_path, monkeypatch):
    models.save(models.conv_bn_relu(channels=64), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\n" + SPEC + "target: {compute_capabilities: [8.9]}\n")
    model_path = str(tmp_path / "model.onnx")
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if str(file) == model_path:
            opened.append(threading.current_thread().name)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    assert run("build", spec, "--force").exit_code == 0
    # Read once: hashed from memory, not read again; the checks beside the build read the
    # original's weights for onnxruntime (which read the whole file itself before).
    assert opened == ["MainThread", "trtc-checks"]

    import trtc.incremental.fingerprint as fingerprint_module

    identities = []
    real_identity = fingerprint_module.code_identity
    monkeypatch.setattr(
        fingerprint_module, "code_identity", lambda package: identities.append(package) or real_identity(package)
    )
    models.save(models.conv_bn_relu(channels=64, size=8), tmp_path / "model.onnx")  # changed: rebuilt
    result = run("build", spec)
    assert result.exit_code == 0 and "the model changed" in result.stderr, result.stderr
    assert len(identities) == 1  # the up-to-date check's fingerprint is the build's


def test_the_checks_start_once_tensorrt_has_parsed_the_graph(tmp_path, monkeypatch):
    parsed = threading.Event()
    real_parse, real_start = builder.parse_problems, Reference.__init__
    started_before_parse: list[bool] = []

    def parse_problems(*args, **kwargs):
        time.sleep(2)  # a slow parse: checks started beside it would start their sessions meanwhile
        problems = real_parse(*args, **kwargs)
        parsed.set()
        return problems

    def start_session(self, *args, **kwargs):
        started_before_parse.append(not parsed.is_set())
        real_start(self, *args, **kwargs)

    monkeypatch.setattr(builder, "parse_problems", parse_problems)
    monkeypatch.setattr(Reference, "__init__", start_session)
    report = models.build_report(tmp_path, models.conv_bn_relu(channels=64), SPEC)
    assert report["verification"]["status"] == "verified"
    assert started_before_parse and not any(started_before_parse)


def test_onnxruntime_reads_the_original_weights_from_the_users_file_once(tmp_path, monkeypatch):
    from trtc.graph.file_weights import WeightsInFile

    models.save(models.conv_bn_relu(channels=64), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\n" + SPEC + "target: {compute_capabilities: [8.9]}\n")
    real_start, given = Reference.__init__, []

    def start_session(self, model, *args, **kwargs):
        given.append(model)
        real_start(self, model, *args, **kwargs)

    monkeypatch.setattr(Reference, "__init__", start_session)
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    # Not the file's path: onnxruntime given the file copies every weight twice as it starts.
    assert isinstance(given[0], WeightsInFile) and given[0].path == tmp_path / "model.onnx"
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert report["verification"]["status"] == "verified"

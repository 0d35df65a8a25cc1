"""The fusion map accounts for every ONNX node, and a model's FLOPs do not depend on the precision
it is built in: real builds of the demo and of a MobileNet-style classifier (whose FP16 engine
runs a pointwise conv as a GEMM, logged as `[ONNX Layer: ...]__gemm_from_conv1x1`) in fp32, fp16,
bf16, int8 and fp8; `trtc diff` between precisions; node names that look like metadata syntax."""

from __future__ import annotations

import json

import onnx
import pytest
from click.testing import CliRunner

from tests import models
from tests.conftest import REPO
from trtc.cli import main

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

PRECISIONS = {
    "fp32": "fp32",
    "fp16": "fp16",
    "bf16": "bf16",
    "int8": "{mode: int8, calibration: {data: random, samples: 16}}",
    "fp8": "{mode: fp8, calibration: {data: random, samples: 16}}",
}
MODELS = {"demo": lambda: onnx.load(str(REPO / "models" / "demo.onnx")), "mobilenet": models.mobilenet_like}


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(model, precision) -> the folder of its build; each built once for the module."""
    folders = {}

    def build(model: str, precision: str):
        if (model, precision) not in folders:
            folder = tmp_path_factory.mktemp(f"{model}-{precision}")
            models.build_report(folder, MODELS[model](), f"max_batch: 8\nprecision: {PRECISIONS[precision]}\n")
            folders[model, precision] = folder
        return folders[model, precision]

    return build


def _report(folder) -> dict:
    return json.loads((folder / "build" / "spec.report.json").read_text())


def _places(report: dict) -> dict[str, set[str]]:
    fusion = report["fusion"]
    model_nodes = {node["name"] for node in report["cost"]["nodes"]}
    return {
        "kernels": {n for k in fusion["kernels"] for n in k["onnx_nodes"] if n in model_nodes},
        "removed": {n["name"] for n in fusion["removed_nodes"]},
        "build time": {n["name"] for n in fusion["folded_nodes"]},
        "unnamed": {n["name"] for n in fusion["unnamed_nodes"]},
    }


@pytest.mark.parametrize("precision", ["fp16", "bf16", "int8", "fp8"])
@pytest.mark.parametrize("model", ["demo", "mobilenet"])
def test_flops_and_node_places_are_the_same_in_every_precision(built, model, precision):
    fp32, other = _report(built(model, "fp32")), _report(built(model, precision))
    for stage in ("onnx_model", "before_fusion", "after_fusion"):
        assert other["cost"][stage]["flops"] == fp32["cost"][stage]["flops"], stage
    assert other["cost"]["build_time_flops"] == fp32["cost"]["build_time_flops"] == 0
    # TensorRT may elide a view (Flatten) in one precision and name it in a kernel in another; what
    # the passes removed and what the model's nodes are does not change.
    places, reference = _places(other), _places(fp32)
    assert (
        places["removed"] == reference["removed"]
        and places["kernels"] | places["unnamed"] == reference["kernels"] | reference["unnamed"]
    )
    assert places["build time"] == set()  # every node computes on the input
    assert places["unnamed"] <= {"flatten", "Flatten.0"}  # nothing that computes is lost


def test_a_gemm_from_conv1x1_kernel_covers_its_conv(built):
    report = _report(built("mobilenet", "fp16"))
    gemm = [k for k in report["fusion"]["kernels"] if k["metadata"].endswith("]__gemm_from_conv1x1")]
    assert len(gemm) == 1, [k["metadata"] for k in report["fusion"]["kernels"]]
    assert gemm[0]["onnx_nodes"] == ["Conv.8", "BatchNormalization.8"] and gemm[0]["built_nodes"] == [
        "Conv.8+BatchNormalization.8"
    ]
    assert gemm[0]["flops"] == 8 * 4 * 4 * 256 * 512  # opt batch 8, a 4x4 map, 256 -> 512 channels


def test_nodes_a_pass_removed_are_named_with_the_pass(built):
    folder = built("mobilenet", "fp16")
    report = _report(folder)
    assert report["fusion"]["removed_nodes"] == [{"name": "Dropout.0", "op_type": "Dropout", "pass": "remove-noops"}]
    assert report["fusion"]["unnamed_nodes"] == [{"name": "Flatten.0", "op_type": "Flatten"}]
    assert report["fusion"]["folded_nodes"] == []
    assert report["fusion"]["counts"]["removed_nodes"] == 1
    markdown = (folder / "build" / "spec.report.md").read_text()
    assert "Removed by trtc's graph passes:\n\n- `Dropout.0` (Dropout): remove-noops\n" in markdown
    assert "Run, but named by no kernel (they compute on the inputs, " in markdown
    assert "count after fusion, in no kernel):\n\n- `Flatten.0` (Flatten)\n" in markdown
    assert "Evaluated by TensorRT at build time" not in markdown
    html = (folder / "build" / "spec.report.html").read_text()
    assert "Removed by trtc's graph passes" in html and "Dropout.0" in html
    assert "merged them away" not in markdown + html


def test_console_names_where_nodes_without_a_kernel_went(tmp_path):
    result, _ = models.build(tmp_path, models.mobilenet_like(), "max_batch: 8\nprecision: fp16\n")
    assert result.exit_code == 0, result.stderr
    assert (
        "  1 node removed by trtc's passes (remove-noops 1); 1 node run but named by no kernel (1 Flatten)\n"
        in result.stderr
    )
    assert "gemm         Half" in result.stderr and "Conv.8, BatchNormalization.8" in result.stderr


@pytest.mark.parametrize("model", ["demo", "mobilenet"])
def test_diff_between_fp32_and_fp16_shows_no_flops_change(built, model):
    old, new = (built(model, precision) / "build" / "spec.report.json" for precision in ("fp32", "fp16"))
    result = run("diff", old, new, "--json", "--fail-on", "flops=+0", "--fail-on", "flops=-0")
    assert result.exit_code == 0, result.stderr
    flops = json.loads(result.stdout)["metrics"]["flops"]
    assert flops["change"] == 0 and flops["old"] == flops["new"] > 0


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_node_names_that_look_like_metadata_syntax(tmp_path, precision):
    report = models.build_report(tmp_path, models.odd_names(), f"max_batch: 4\nprecision: {precision}\n")
    fusion = report["fusion"]
    assert fusion["folded_nodes"] == [] and fusion["removed_nodes"] == [] and fusion["unknown_metadata_nodes"] == []
    assert {n for k in fusion["kernels"] for n in k["onnx_nodes"]} >= set(models.ODD_NAMES)
    # fold-batchnorm joins the names with `+`: the kernel names that one node, not a split of it.
    assert "conv a+b+bn]x" in {n for k in fusion["kernels"] for n in k["built_nodes"]}


def test_nodes_gone_before_the_passes_have_a_place_and_resolved_control_flow_sits_in_kernels(tmp_path):
    """`outputs:` prunes a branch and pinning folds the nodes it made constant: both are listed,
    with the step; an If or Loop pinning resolved is where the nodes it became are (the kernels),
    not lost (tests/report_checks.py checks this against the model file for every report)."""
    from tests.passes.test_loops import loop_model
    from tests.passes.test_pin import sample_rate_model

    side = models.conv_bn_relu(extra_nodes=[onnx.helper.make_node("Sigmoid", ["c0"], ["side"], name="side")])
    result, report = models.build(tmp_path / "outputs", side, "max_batch: 4\noutputs: [y]\n")
    assert result.exit_code == 0, result.stderr
    assert report["fusion"]["pruned_nodes"] == [{"name": "side", "op_type": "Sigmoid", "by": "outputs"}]
    assert "  1 node pruned before the passes (outputs 1)" in result.stderr
    markdown = (tmp_path / "outputs" / "build" / "spec.report.md").read_text()
    assert "Pruned before the graph passes:\n\n- `side` (Sigmoid): outputs\\: feeds none of them\n" in markdown
    assert "Pruned before the graph passes" in (tmp_path / "outputs" / "build" / "spec.report.html").read_text()

    pinned = models.build_report(tmp_path / "pin", sample_rate_model(), "max_batch: 4\ninputs:\n  sr: {value: 8000}\n")
    assert pinned["fusion"]["pruned_nodes"] == [
        {"name": "is16k", "op_type": "Equal", "by": "pinning"},
        {"name": "high", "op_type": "Greater", "by": "pinning"},
    ]
    (sigmoid,) = [k for k in pinned["fusion"]["kernels"] if k["built_nodes"] == ["outer_if/other_sigmoid"]]
    assert sigmoid["onnx_nodes"] == ["outer_if"] and sigmoid["onnx_op_types"] == ["If"]

    unrolled = models.build_report(tmp_path / "loop", loop_model(), "max_batch: 4\ninputs:\n  steps: {value: 3}\n")
    assert {n for k in unrolled["fusion"]["kernels"] for n in k["onnx_nodes"]} == {"refine"}
    assert unrolled["fusion"]["counts"]["onnx_nodes"] == 1


def test_an_epilogue_counts_in_the_kernel_that_runs_its_producer(built):
    # The FP16 demo's input cast runs in a kernel of its own whose metadata names the stem too:
    # the ReLU fused into the convolution's kernel counts there, not in the cast.
    report = _report(built("demo", "fp16"))
    node_flops = {node["name"]: node["flops"] for node in report["cost"]["nodes"]}
    kernels = report["fusion"]["kernels"]
    convolution = next(k for k in kernels if k["type"] == "correlation" and "stem.conv" in k["onnx_nodes"])
    cast = next(k for k in kernels if k is not convolution and "stem.relu" in k["onnx_nodes"])
    assert "Cast (added by trtc)" in cast["onnx_op_types"]
    assert convolution["flops"] == node_flops["stem.conv"] + node_flops["stem.relu"]
    assert cast["flops"] == 0

"""`trtc diff` on reports of real builds: what changed between FP32 and FP16, thresholds as a CI
gate (exit 4), and one-line errors for files that are not comparable reports."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from tests import models
from trtc.cli import main
from trtc.report.diff import diff_reports

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

SPEC = "model: model.onnx\nmax_batch: 4\ntarget: {compute_capabilities: [8.9]}\n"


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diff")
    models.save(models.conv_bn_relu(), folder / "model.onnx")
    spec = models.write_spec(folder, SPEC)
    paths = {}
    for mode in ("fp32", "fp16"):
        report = folder / "build" / f"{mode}.report.json"
        result = run(
            "build",
            spec,
            "--set",
            f"precision={mode}",
            "--set",
            f"output.plan={folder / 'build' / mode}.plan",
            "--set",
            f"output.report={report}",
        )
        assert result.exit_code == 0, result.stderr
        paths[mode] = report
    return paths


def test_a_build_against_itself_has_no_changes(reports):
    result = run("diff", reports["fp32"], reports["fp32"], "--json", "--fail-on", "time=+0", "--fail-on", "kernels=+0")
    assert result.exit_code == 0, result.stderr
    diff = json.loads(result.stdout)
    kernels = diff["kernels"]
    assert kernels["added"] == kernels["removed"] == kernels["precision_changed"] == kernels["time_changed"] == []
    assert all(m["change"] in (0, None) for m in diff["metrics"].values())
    assert diff["crossed"] == []
    assert f"same {kernels['unchanged']} kernels, same fusions and precisions" in result.stderr


def test_fp32_to_fp16_shows_the_precision_and_accuracy_changes(reports):
    result = run("diff", reports["fp32"], reports["fp16"], "--json")
    assert result.exit_code == 0, result.stderr
    diff = json.loads(result.stdout)
    fp32, fp16 = (json.loads(reports[m].read_text()) for m in ("fp32", "fp16"))
    assert (diff["old"]["precision"], diff["new"]["precision"]) == ("fp32", "fp16")
    changed = {tuple(c["onnx_nodes"]): (c["old"], c["new"]) for c in diff["kernels"]["precision_changed"]}
    assert ("Float", "Half") in changed.values()
    assert diff["metrics"]["plan_size"] == {
        **diff["metrics"]["plan_size"],
        "old": fp32["build"]["plan_bytes"],
        "new": fp16["build"]["plan_bytes"],
        "change": fp16["build"]["plan_bytes"] - fp32["build"]["plan_bytes"],
    }
    assert "accuracy" not in fp32 and diff["metrics"]["accuracy"]["old"] == 1.0  # FP32 is the reference itself
    assert diff["metrics"]["accuracy"]["new"] == min(o["cosine"] for o in fp16["accuracy"]["outputs"])
    assert "precision Float -> Half:" in result.stderr
    assert diff["old"]["is_the_fp32_reference"] and not diff["new"]["is_the_fp32_reference"]
    printed = run("diff", reports["fp32"], reports["fp16"]).stderr
    assert "worst cosine vs FP32 1 (FP32 itself) 0.99" in " ".join(printed.split())


def test_thresholds_gate_with_exit_4_and_name_each_crossing(reports):
    fp32, fp16 = (json.loads(reports[m].read_text()) for m in ("fp32", "fp16"))
    assert fp16["cost"]["estimated_total_us"] < fp32["cost"]["estimated_total_us"]  # FP16 moves half the bytes
    relaxed = run("diff", reports["fp16"], reports["fp32"], "--fail-on", "time=+1000%")
    assert relaxed.exit_code == 0, relaxed.stderr
    strict = run(
        "diff",
        reports["fp16"],
        reports["fp32"],
        "--fail-on",
        "time=+5%",
        "--fail-on",
        "plan_size=+1000%",
        "--fail-on",
        "warnings=+5",
    )
    assert strict.exit_code == 4
    assert "error: 1 of 3 --fail-on threshold(s) crossed\n  est. engine time (us): " in strict.stderr
    assert "crosses time=+5%" in strict.stderr
    falling = run("diff", reports["fp32"], reports["fp16"], "--fail-on", "time=-0.000001")  # fail when it drops at all
    assert falling.exit_code == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--fail-on", "time>5"],
            "error: --fail-on 'time>5': expected METRIC=+N, METRIC=+N% or METRIC=-N (e.g. time=+5%, accuracy=-0.001)",
        ),
        (
            ["--fail-on", "tme=+5%"],
            "error: --fail-on 'tme=+5%': unknown metric 'tme' (did you mean 'time'?); known: time, plan_size, kernels, "
            "flops, mac, accuracy, warnings, build_time",
        ),
    ],
)
def test_bad_thresholds_are_usage_errors(reports, args, message):
    result = run("diff", reports["fp32"], reports["fp16"], *args)
    assert result.exit_code == 2
    assert result.stderr == message + "\n"


def test_files_that_are_not_comparable_reports(reports, tmp_path):
    (tmp_path / "other.json").write_text('{"hello": 1}')
    (tmp_path / "broken.json").write_text("{")
    old_schema = json.loads(reports["fp32"].read_text()) | {"schema": "trtc.report/0"}
    (tmp_path / "old.json").write_text(json.dumps(old_schema))
    for name, message in (
        ("missing.json", "no such report"),
        ("other.json", "not a trtc build report"),
        ("broken.json", "not a JSON file (JSONDecodeError)"),
        ("old.json", "report schema 'trtc.report/0' is not 'trtc.report/1'; rebuild it with this trtc"),
    ):
        result = run("diff", tmp_path / name, reports["fp32"])
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {tmp_path / name}: {message}")


def test_demo_fp32_to_fp16_pairs_kernels_that_share_nodes(demo_copy):
    """The demo's FP16 engine has two kernels over the same heads (and several over no node of the
    model): they pair in build order. Keys made unique by position crashed the rendering here."""
    build = demo_copy.parent / "build"
    for mode in ("fp32", "fp16"):
        result = run(
            "build",
            demo_copy,
            "--set",
            f"precision={mode}",
            "--set",
            f"output.plan={build / mode}.plan",
            "--set",
            f"output.report={build / mode}.report.json",
        )
        assert result.exit_code == 0, result.stderr
    result = run("diff", build / "fp32.report.json", build / "fp16.report.json", "--json")
    assert result.exit_code == 0, result.stderr
    diff = json.loads(result.stdout)
    old, new = (json.loads((build / f"{m}.report.json").read_text())["fusion"]["kernels"] for m in ("fp32", "fp16"))
    kernels = diff["kernels"]
    matched = kernels["unchanged"] + len(kernels["precision_changed"])
    assert matched + len(kernels["removed"]) == len(old) and matched + len(kernels["added"]) == len(new)
    entries = [*kernels["added"], *kernels["removed"], *kernels["precision_changed"], *kernels["time_changed"]]
    assert all(isinstance(node, str) for entry in entries for node in entry["onnx_nodes"])
    assert ["head0", "head1", "head2"] in [c["onnx_nodes"] for c in kernels["precision_changed"]]
    # TensorRT puts the input's cast to FP16 in a kernel of its own that names the stem too: the
    # stem's convolution is still the convolution it was, now in Half.
    stem = ["stem.bn", "stem.conv", "stem.relu"]
    assert {"onnx_nodes": stem, "old": "Float", "new": "Half"} in kernels["precision_changed"]
    assert [k["type"] for k in kernels["added"] if k["onnx_nodes"] == stem] == ["kgen"]


def test_kernels_over_the_same_nodes_pair_with_their_own_kind_first(reports):
    old = json.loads(reports["fp32"].read_text())
    new = json.loads(json.dumps(old))
    convolution = next(k for k in new["fusion"]["kernels"] if k["type"] != "kgen" and k["onnx_nodes"])
    cast = {**convolution, "type": "kgen", "precision": "Float"}
    cast["onnx_nodes"], cast["onnx_op_types"] = (
        ["in/cast", *cast["onnx_nodes"]],
        ["Cast (added by trtc)", *cast["onnx_op_types"]],
    )
    convolution["precision"] = "Half"
    kernels = new["fusion"]["kernels"]
    kernels.insert(kernels.index(convolution), cast)  # before the convolution, as TensorRT orders them
    diff = diff_reports(old, new)["kernels"]
    assert [(k["type"], k["precision"]) for k in diff["added"]] == [("kgen", "Float")]
    assert [(c["old"], c["new"]) for c in diff["precision_changed"]] == [("Float", "Half")]


def test_one_more_kernel_over_no_node_is_one_added_kernel(reports):
    old = json.loads(reports["fp32"].read_text())
    new = json.loads(json.dumps(old))
    shape_kernel = {**new["fusion"]["kernels"][0], "onnx_nodes": [], "onnx_op_types": [], "type": "shape_call"}
    new["fusion"]["kernels"][:0] = [shape_kernel, dict(shape_kernel)]  # in front: every later position moves
    old["fusion"]["kernels"].insert(0, dict(shape_kernel))
    diff = diff_reports(old, new)["kernels"]
    assert diff["removed"] == [] and len(diff["added"]) == 1 and diff["added"][0]["type"] == "shape_call"
    assert diff["unchanged"] == len(old["fusion"]["kernels"])


def test_accuracy_gate_against_an_fp32_baseline(reports, tmp_path):
    fp16 = json.loads(reports["fp16"].read_text())
    worst = min(o["cosine"] for o in fp16["accuracy"]["outputs"])
    assert 0.99 < worst < 1.0
    assert run("diff", reports["fp32"], reports["fp16"], "--fail-on", "accuracy=-0.01").exit_code == 0
    crossed = run("diff", reports["fp32"], reports["fp16"], "--fail-on", "accuracy=-0")
    assert crossed.exit_code == 4 and f"worst cosine vs FP32: 1.0000000 -> {worst:.7f} (" in crossed.stderr
    assert re.search(rf"worst cosine vs FP32 +1 \(FP32 itself\) +{worst:.7f} ", crossed.stderr)  # not rounded to 1
    # A reduced-precision report without measured accuracy cannot be gated: a one-line usage error.
    (tmp_path / "unmeasured.json").write_text(json.dumps({k: v for k, v in fp16.items() if k != "accuracy"}))
    missing = run("diff", reports["fp32"], tmp_path / "unmeasured.json", "--fail-on", "accuracy=-0.01")
    assert missing.exit_code == 2
    assert (
        missing.stderr
        == "error: --fail-on accuracy=-0.01: the new report has no worst cosine vs FP32; drop this threshold\n"
    )

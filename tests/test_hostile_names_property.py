"""Property: whatever a model's node, tensor and input names and its file name hold (line breaks,
backticks, pipes, brackets, angle brackets, colons, dollars, quotes, unicode), trtc builds it or
refuses it in one clean line, and no name changes the structure of report.md, the step summary,
the HTML report, console output, the Make dependency file or `trtc diff`'s output.

Every example is a real TensorRT-RTX build (about a second), so the examples are few and fixed
(derandomized): a new failure shows on the next change of this file, not at random in CI."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tests import models
from tests.structure import console_problems, html_problems, make_reads, markdown_problems
from trtc.cli import main

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

HOSTILE = "\n\t`|[]<>:$'\"#*_\\ &!%=;()/-.~{}é☃\u2028"
NAME = st.text(st.sampled_from(HOSTILE + "ab0"), min_size=1, max_size=6)
# conv0 -> bn0 -> relu0 -> conv1 over tensors x -> c0 -> b0 -> r0 -> y
RENAMED = ("conv0", "bn0", "relu0", "conv1", "x", "c0", "b0", "r0", "y")
FILE_NAME = NAME.filter(lambda name: "/" not in name)
ENV = {"COLUMNS": "400", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def plain_report(tmp_path_factory) -> Path:
    """The same model with plain names, for `trtc diff` (every kernel then reads as added)."""
    folder = tmp_path_factory.mktemp("plain")
    models.save(models.conv_bn_relu(batch=1), folder / "model.onnx")
    spec = models.write_spec(folder, "model: model.onnx\ntarget: {compute_capabilities: [8.9]}\n")
    assert CliRunner().invoke(main, ["build", str(spec)]).exit_code == 0
    return folder / "build" / "spec.report.json"


def _names_in(report: dict) -> list[str]:
    """Every model name the report holds (TensorRT's log may cut a name at a line break, so these,
    not the drawn names, are what the renderings must show as written)."""
    fusion = report.get("fusion") or {}
    return sorted(
        {
            *(b["name"] for b in report["bindings"]),
            *(n["name"] for n in fusion.get("folded_nodes", [])),
            *(n["name"] for n in fusion.get("unnamed_nodes", [])),
            *(n for k in fusion.get("kernels", []) for n in k["onnx_nodes"]),
        }
    )


def _clean_refusal(result) -> list[str]:
    first = result.stderr.splitlines()[0] if result.stderr else ""
    return (
        []
        if first.startswith("error: ") and "internal error" not in result.stderr
        else [f"not a clean refusal: {result.stderr!r}"]
    )


# No shrinking: each step is a build, and a failing example is already small.
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(names=st.lists(NAME, min_size=len(RENAMED), max_size=len(RENAMED), unique=True), model_name=FILE_NAME)
def test_hostile_names_change_no_structure(plain_report, names, model_name):
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _check_build(folder, names, model_name, plain_report)


def _check_build(folder: Path, names: list[str], model_name: str, plain_report: Path) -> None:
    model_file = folder / f"{model_name}.onnx"
    models.save(models.renamed(models.conv_bn_relu(batch=1), dict(zip(RENAMED, names))), model_file)
    spec = models.write_spec(folder, f"model: {json.dumps(model_file.name)}\ntarget: {{compute_capabilities: [8.9]}}\n")
    plan = folder / "build" / "spec.plan"  # the depfile names it so: trtc runs outside `folder` here
    (folder / "Makefile").write_text(f"all: {plan}\n-include deps.d\n{plan}:\n\techo rebuilt\n")
    runner = CliRunner(env={**ENV, "GITHUB_STEP_SUMMARY": str(folder / "summary.md")})
    result = runner.invoke(main, ["build", str(spec), "--depfile", str(folder / "deps.d")])
    refusals = 0  # each is a bold "build failed" line in the step summary
    if result.exit_code == 2 and "Make cannot name the file" in result.stderr:  # refused before anything was written
        assert (
            len(result.stderr.splitlines()) == 1
            and not (folder / "build").exists()
            and not (folder / "deps.d").exists()
        )
        result, refusals = runner.invoke(main, ["build", str(spec)]), 1
    if result.exit_code != 0:  # TensorRT's parser may refuse a name: one clean error, nothing written
        event("refused by the build")
        assert _clean_refusal(result) == [] and not (folder / "build").exists()
        return
    event("built" + (" (the depfile refused the file name)" if refusals else ""))
    report = json.loads((folder / "build" / "spec.report.json").read_text())
    shown = _names_in(report)
    assert markdown_problems((folder / "build" / "spec.report.md").read_text(), shown) == []
    assert markdown_problems((folder / "summary.md").read_text(), shown, strong=refusals) == []
    assert html_problems((folder / "build" / "spec.report.html").read_text(), shown) == []
    assert console_problems(result.stderr, [n for k in report["fusion"]["kernels"] for n in k["onnx_nodes"]]) == [], (
        result.stderr
    )
    inspect = CliRunner(env=ENV).invoke(main, ["inspect", str(model_file)])
    assert inspect.exit_code == 0 and console_problems(inspect.stderr, names[:4]) == [], inspect.stderr
    diff = CliRunner(env=ENV).invoke(
        main, ["diff", str(plain_report), str(folder / "build" / "spec.report.json"), "--json"]
    )
    kernel_nodes = [n for k in report["fusion"]["kernels"] for n in k["onnx_nodes"]]
    assert diff.exit_code == 0 and console_problems(diff.stderr, kernel_nodes) == [], diff.stderr
    assert json.loads(diff.stdout)["new"]["name"] == "spec"
    if not refusals:  # Make reads the dependency file, finds the plan up to date, and sees the model change
        assert make_reads(folder).returncode == 0, (make_reads(folder).stderr, (folder / "deps.d").read_text())
        os.utime(model_file, (1e10, 1e10))
        assert make_reads(folder).returncode == 1

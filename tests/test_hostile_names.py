"""Names from a model (nodes, tensors, inputs, dimensions) written with Markdown, HTML, rich markup
and YAML syntax: every output shows them as written and keeps its own structure."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from onnx import TensorProto, helper

from tests import models
from tests.structure import console_problems, html_problems, markdown_problems
from trtc.cli import main
from trtc.commands.build_job import FAILED, JobResult
from trtc.commands.step_summary import append_step_summary

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

NAMES = {
    "conv0": "# conv|`x`\n## head [l](http://e.x) <b>b</b> *s* _u_",
    "bn0": "bn[/]0 [bold]x",
    "relu0": "relu\tr: $x #! &amp; ---",
    "conv1": "c1|a|b",
    "x": "in[/]put <i>",
    "c0": "t`0`|",
    "r0": "r0<i>i</i>",
    "y": "out: #y [/] |\n- item",
}
# Not "y": TensorRT's layer log is one line per tensor, so the report holds it only up to its newline.
SHOWN = [NAMES[key] for key in ("conv0", "bn0", "relu0", "conv1", "x")]
WIDE = {"COLUMNS": "400", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """conv_bn_relu with hostile names, built with GITHUB_STEP_SUMMARY set: (folder, CLI result)."""
    folder = tmp_path_factory.mktemp("hostile")
    models.save(models.renamed(models.conv_bn_relu(), NAMES), folder / "model.onnx")
    spec = models.write_spec(folder, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    result = CliRunner(env={**WIDE, "GITHUB_STEP_SUMMARY": str(folder / "summary.md")}).invoke(
        main, ["build", str(spec)]
    )
    assert result.exit_code == 0, result.stderr
    return folder, result


def test_markdown_report_and_step_summary_keep_their_structure(hostile):
    folder, _ = hostile
    report = (folder / "build" / "spec.report.md").read_text()
    assert markdown_problems(report, SHOWN) == []
    assert markdown_problems((folder / "summary.md").read_text(), SHOWN) == []


def test_a_failed_build_in_the_step_summary_keeps_its_structure(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    name, node = "net\n# owned", "n|`[x](http://e.x)`\n<b>"
    append_step_summary(
        [
            JobResult(
                name,
                "spec.yaml",
                FAILED,
                1,
                "build failed",
                0.0,
                error=f"TensorRT refused node {node!r}",
                details=[f"{node}: unsupported", "- item\n> quote"],
            )
        ]
    )
    assert markdown_problems(summary.read_text(), [name, node], strong=1) == []


def test_html_report_shows_names_as_text(hostile):
    folder, _ = hostile
    assert html_problems((folder / "build" / "spec.report.html").read_text(), SHOWN) == []


def test_console_shows_names_as_written(hostile):
    _, result = hostile
    assert console_problems(result.stderr, [NAMES["conv1"]]) == []


def test_inspect_and_check_show_markup_in_names_and_op_types_as_written(tmp_path):
    """rich markup (`[/]` closes a style that is not open) in an input name and a custom op type."""
    model = models.renamed(
        models.conv_bn_relu(
            extra_nodes=[helper.make_node("Frob[/]nicate", ["y"], ["f"], name="frob[b]", domain="x.y")]
        ),
        NAMES,
    )
    models.save(model, tmp_path / "model.onnx")
    inspect = CliRunner(env=WIDE).invoke(
        main, ["inspect", str(tmp_path / "model.onnx"), "--shape", f"{NAMES['x']}=1x3x16x16"]
    )
    assert inspect.exit_code == 0, inspect.stderr
    assert console_problems(inspect.stderr, [NAMES["x"], "Frob[/]nicate", "frob[b]", NAMES["bn0"]]) == []
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    check = CliRunner(env=WIDE).invoke(main, ["check", str(spec)])
    assert check.exit_code == 1 and console_problems(check.stderr, ["Frob[/]nicate", "frob[b]"]) == []


def test_diff_shows_names_and_report_strings_as_written(hostile, model_dir):
    """A report is a file anyone can edit: its strings are shown as written too."""
    folder, _ = hostile
    plain = models.write_spec(model_dir, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    assert CliRunner().invoke(main, ["build", str(plain)]).exit_code == 0
    edited = json.loads((folder / "build" / "spec.report.json").read_text())
    edited["build"]["built_at"] = "[/]today"
    edited["fusion"]["kernels"][-1]["precision"] = "[bold]Half"
    (model_dir / "edited.json").write_text(json.dumps(edited))
    result = CliRunner(env=WIDE).invoke(
        main, ["diff", str(model_dir / "build" / "spec.report.json"), str(model_dir / "edited.json")]
    )
    assert result.exit_code == 0, result.stderr
    assert console_problems(result.stderr, [NAMES["conv1"], "[/]today", "[bold]Half"]) == []


YAML_HOSTILE = [
    ": x",
    "a: b",
    "#c",
    "-d",
    "- e",
    "*f",
    "&g",
    "!h",
    "é ☃",
    "a\nb",
    ".inf",
    ".5",
    "yes",
    "null",
    "~",
    "'q'",
    '"d"',
    "x\u2028y",
    "x\x85y",
    "{a}",
    "[b]",
    "%t",
    "@u",
    "`v`",
    "| w",
    "> x",
    "? y",
    "a #b",
    " lead",
    "trail ",
    "\\",
    "\x7f",
]


def test_init_quotes_every_name_and_keeps_comments_comments(tmp_path):
    """Inputs with a dynamic non-batch dimension get an uncommented entry keyed by name; outputs
    are listed in comments ready to uncomment; dimension names sit in comments."""
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", "T: x\nprecision: int8 # \u2028workspace: 1", 4])
        for name in YAML_HOSTILE
    ]
    outputs = [helper.make_tensor_value_info(f"out {name}", TensorProto.FLOAT, None) for name in YAML_HOSTILE]
    nodes = [
        helper.make_node("Relu", [i.name], [o.name], name=f"relu{index}")
        for index, (i, o) in enumerate(zip(inputs, outputs))
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs), opset_imports=[helper.make_opsetid("", models.OPSET)]
    )
    models.save(model, tmp_path / "m: #1.onnx")
    result = CliRunner().invoke(main, ["init", str(tmp_path / "m: #1.onnx"), "-o", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "spec.yaml").read_text()
    document = yaml.safe_load(text)
    assert set(document) == {"model", "max_batch", "inputs", "workspace", "precision", "target", "output"}
    assert (document["model"], document["precision"], document["workspace"]) == ("m: #1.onnx", "fp32", "1GiB")
    assert list(document["inputs"]) == YAML_HOSTILE
    listed = [yaml.safe_load(line.removeprefix("#   ")) for line in text.splitlines() if line.startswith("#   - ")]
    assert [entry[0] for entry in listed] == [f"out {name}" for name in YAML_HOSTILE]
    assert json.loads(CliRunner().invoke(main, ["check", str(tmp_path / "spec.yaml"), "--json"]).stdout)[
        "exit_code"
    ] in (0, 1)

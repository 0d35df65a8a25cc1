"""What users of trtexec, Polygraphy and ModelOpt expect from a CLI: versions, -q/-v everywhere,
help with examples in the order commands are met, editor support for specs."""

from __future__ import annotations

import json
import re

import pytest

from tests import models
from tests.cli_runner import run

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

COMMANDS = ["init", "check", "build", "diff", "inspect", "run", "schema"]


def test_version_names_trtc_the_backend_onnx_and_onnxruntime():
    result = run("--version")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("trtc ") and lines[1].startswith("TensorRT backend: tensorrt-rtx ")
    assert lines[2].startswith("onnx ") and "onnxruntime " in lines[2]


def test_commands_are_listed_in_the_order_a_user_meets_them():
    listed = re.findall(r"^  (\w+) ", run("--help").output.split("Commands:")[1], re.MULTILINE)
    assert [name for name in listed if name in COMMANDS] == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_quiet_and_verbose_and_its_help_shows_examples(command):
    help_text = run(command, "--help").output
    assert "-q, --quiet" in help_text and "-v, --verbose" in help_text
    assert "Examples:" in help_text and f"trtc {command} " in help_text


def test_init_points_editors_at_a_schema_it_writes_and_schema_writes_it_too(tmp_path):
    models.save(models.conv_bn_relu(), tmp_path / "m.onnx")
    assert run("init", tmp_path / "m.onnx", "-o", tmp_path / "m.yaml").exit_code == 0
    assert (tmp_path / "m.yaml").read_text().splitlines()[0] == "# yaml-language-server: $schema=trtc.schema.json"
    written = json.loads((tmp_path / "trtc.schema.json").read_text())
    assert written["title"] == "trtc build spec"
    assert run("schema", "-o", tmp_path / "again.json").exit_code == 0
    assert json.loads((tmp_path / "again.json").read_text()) == written


def test_the_default_build_output_fits_a_screen_and_verbose_shows_every_kernel(tmp_path):
    models.save(
        models.conv_chain(60) if hasattr(models, "conv_chain") else models.conv_bn_relu(), tmp_path / "model.onnx"
    )
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    default = run("build", spec)
    assert default.exit_code == 0, default.output
    kernels = json.loads((tmp_path / "build" / "spec.report.json").read_text())["fusion"]["counts"]["kernels"]
    verbose = run("build", spec, "--force", "-v")
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())["fusion"]["kernels"]
    row = [re.compile(rf"^\s*{k['index']}\s+{re.escape(k['type'])}\s", re.MULTILINE) for k in report]
    rows = lambda output: sum(1 for pattern in row if pattern.search(output))  # noqa: E731
    assert rows(verbose.stderr) == kernels > 12
    assert rows(default.stderr) <= 12 and "all with -v and in the report" in default.stderr

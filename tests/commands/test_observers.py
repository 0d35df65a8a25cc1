"""The report's warnings are exactly the warnings the build showed: each once, in the order
shown, whichever step found them (loading, precision, verification beside the build, report)."""

import json

import pytest

from tests import models
from tests.cli_runner import run
from tests.pass_registry import register_pass
from tests.passes.test_verify import DoubleOneWeight

pytestmark = pytest.mark.build


def test_report_warnings_are_the_warnings_shown_in_order_once_each(tmp_path, monkeypatch):
    register_pass(monkeypatch, "broken-fold", DoubleOneWeight)
    models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\nfusion: {passes: [fold-batchnorm, broken-fold]}\n"
        "precision: {mode: fp16, keep_fp32: [no_such_node]}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec, "--no-diagnose")
    assert result.exit_code == 0, result.stderr
    shown = [line.removeprefix("warning: ") for line in result.stderr.splitlines() if line.startswith("warning: ")]
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert len(shown) >= 2  # keep_fp32's and verification's, at least
    assert any("no_such_node" in w for w in shown) and any("verification: dropped" in w for w in shown)
    assert report["warnings"] == shown
    assert len(set(shown)) == len(shown)

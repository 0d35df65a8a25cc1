"""The HTML report of real builds: rendered by headless Chromium (not blank, key numbers in the
DOM), self-contained, and escaping every name that comes from the model."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests import models
from tests.conftest import REPO
from trtc.cli import main
from trtc.report.units import human

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE_CONV = '<script>alert("conv")</script>&conv'
HOSTILE_RELU = "relu<img src=x onerror=alert(1)>"


def _build(spec: Path, *args: str) -> None:
    result = CliRunner().invoke(main, ["build", str(spec), *args])
    assert result.exit_code == 0, result.stderr


@pytest.fixture(scope="module")
def demo_fp16(tmp_path_factory) -> tuple[Path, dict]:
    """The demo built in FP16 (two precisions in the engine): its HTML report and JSON report."""
    root = tmp_path_factory.mktemp("html")
    shutil.copytree(REPO / "models", root / "models")
    shutil.copytree(REPO / "configs", root / "configs", ignore=shutil.ignore_patterns("build"))
    _build(root / "configs" / "demo.yaml", "--set", "precision=fp16")
    build = root / "configs" / "build"
    return build / "demo.report.html", json.loads((build / "demo.report.json").read_text())


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing under CI: install it (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")


def _chromium_run(html: Path, profile: Path, *args: str) -> str:
    command = [
        str(_chromium()),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
        html.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chromium_renders_charts_and_key_numbers(demo_fp16, tmp_path):
    from PIL import Image

    html, report = demo_fp16
    screenshot = tmp_path / "report.png"
    _chromium_run(html, tmp_path / "profile-shot", f"--screenshot={screenshot}", "--window-size=1280,2000")
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1280, 2000)
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    # Ink, charts and the header band: darker than the white cards and the light grey page.
    inked = float((pixels.sum(axis=1) < 690).mean())
    coarse = pixels // 16
    colours = set(np.unique(coarse[:, 0] * 256 + coarse[:, 1] * 16 + coarse[:, 2]).tolist())
    assert inked > 0.10, f"only {inked:.1%} of the page is drawn on"
    assert len(colours) > 40, f"only {len(colours)} distinct colours: no charts drawn"
    # The precision colours of the charts are on the page: FP16 kernels green, the FP32 one blue.
    assert 0x173 in colours and 0x06D in colours  # #1a7f37 and #0969da, 16 levels per channel

    dom = _chromium_run(html, tmp_path / "profile-dom", "--dump-dom")
    fusion, cost, build = report["fusion"], report["cost"], report["build"]

    def metric(key: str) -> str:
        match = re.search(
            rf'data-metric="{key}".*?<div class="value">([^<]*)</div><div class="note">(.*?)</div>', dom, re.S
        )
        assert match, f"no {key} tile in the DOM"
        return match.group(1) + " | " + match.group(2)

    assert metric("kernels").startswith(
        f"{fusion['counts']['kernels']} | from {fusion['counts']['onnx_nodes']} ONNX nodes"
    )
    assert metric("flops").startswith(human(cost["after_fusion"]["flops"], "FLOP") + " |")
    assert metric("plan-size").endswith(f"{build['plan_bytes']:,} bytes")
    assert metric("precision").startswith("FP16 |")
    assert f"{build['plan_bytes']:,} bytes" in dom and build["plan_sha256"] in dom
    # Every kernel is a row of the fusion map and a bar of the time chart.
    assert len(re.findall(r'<tr class="(?:un)?fused">', dom)) == fusion["counts"]["kernels"]
    assert all(f"TensorRT kernel {k['name']}" in dom for k in fusion["kernels"])  # in each bar's tooltip
    for output in report["accuracy"]["outputs"]:
        assert f"<code>{output['name']}</code>" in dom


def test_html_is_self_contained(demo_fp16):
    text = demo_fp16[0].read_text()
    assert "<script" not in text and "<link" not in text and "<img" not in text
    assert not re.search(r"(src|href)\s*=|@import|url\(|https?://[^\s\"<]*\.(css|js|woff2?|png|svg)", text)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.add(tag)

    def handle_data(self, data) -> None:
        self.text.append(data)


def test_names_from_the_model_are_escaped(tmp_path):
    model = models.conv_bn_relu()
    renames = {"conv0": HOSTILE_CONV, "relu0": HOSTILE_RELU}
    for node in model.graph.node:
        node.name = renames.get(node.name, node.name)
    models.save(model, tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\nworkspace: 64MiB\ntarget:\n  compute_capabilities: [8.9]\n"
        "output:\n  plan: build/m.plan\n  report: build/m.report.json\n",
    )
    _build(spec)
    html = (tmp_path / "build" / "m.report.html").read_text()
    parsed = _Collect()
    parsed.feed(html)
    assert not parsed.tags & {"script", "img"}
    text = "".join(parsed.text)
    assert HOSTILE_CONV in text and HOSTILE_RELU in text  # shown as written, not interpreted
    assert "&lt;script&gt;alert(&quot;conv&quot;)&lt;/script&gt;&amp;conv" in html


def test_unknown_sizes_show_as_unknown_not_zero(tmp_path):
    from tests.report.test_kernel_cost import _attention_like

    _build(_attention_like(tmp_path))
    report = json.loads((tmp_path / "build" / "a.json").read_text())
    unresolved = report["cost"]["unresolved_kernels"]
    if not unresolved:
        pytest.skip("TensorRT resolved every kernel size of this model: nothing unknown to show")
    html = (tmp_path / "build" / "a.report.html").read_text()
    tile = re.search(
        r'data-metric="mac"><div class="label">[^<]*</div><div class="value">([^<]*)</div><div class="note">([^<]*)',
        html,
    )
    assert tile and tile.groups() == ("?", f"unknown: {len(unresolved)} kernel(s) of dynamic size")
    assert re.search(r'data-metric="estimated-time">.*?<div class="value">\?</div>', html)
    assert html.count("? µs") == len(unresolved)  # one dashed stub per unknown kernel in the time chart


def test_without_a_target_gpu_times_read_as_unknown(model_dir):
    # No compute capability and no target.gpu: no roofline, so no kernel has an estimate.
    spec = models.write_spec(model_dir, "model: model.onnx\nmax_batch: 2\n")
    _build(spec)
    html = (model_dir / "build" / "spec.report.html").read_text()
    assert "µs + ?" not in html and "0.00 µs" not in html
    assert "No estimate: no target GPU is known for this build" in html

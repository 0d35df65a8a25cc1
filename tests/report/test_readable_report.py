"""Reports a person reads, on real builds: kernels labelled by the ONNX nodes they cover (names
escaped), every time figure labelled as an estimate with what it was computed from, the accuracy
summary at the top of a reduced-precision report, and repeated pass changes grouped."""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser

import numpy as np
import pytest

from tests import models
from tests.cli_runner import run
from tests.structure import html_problems, markdown_problems
from trtc.report.markdown import code
from trtc.report.units import human

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

HOSTILE_CONV = '<script>alert("c")</script>&Conv.0 *x* [l](http://e.x)'
HOSTILE_BN = "bn|`1` <b>#</b> _u_"
NAMES = {"Conv.0": HOSTILE_CONV, "BatchNormalization.1": HOSTILE_BN}
TARGET = "target: {compute_capabilities: [8.9]}\n"
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}
TIME = re.compile(r"\d(?:\.\d+)? ?(?:us|µs)\b")


class Built:
    def __init__(self, folder, result):
        build = folder / "build"
        self.stderr = result.stderr
        self.report = json.loads((build / "spec.report.json").read_text())
        self.markdown = (build / "spec.report.md").read_text()
        self.html = (build / "spec.report.html").read_text()


def _build(folder, model, spec_text: str) -> Built:
    models.save(model, folder / "model.onnx")
    spec = models.write_spec(folder, "model: model.onnx\nmax_batch: 2\n" + spec_text + TARGET)
    result = run("build", spec, env=ENV)
    assert result.exit_code == 0, result.stderr
    return Built(folder, result)


@pytest.fixture(scope="module")
def fp16(tmp_path_factory) -> Built:
    """A MobileNet-like model with hostile names, in FP16: a roofline for sm 8.9 (RTX 4090), accuracy
    on random samples, and ten fold-batchnorm changes."""
    return _build(tmp_path_factory.mktemp("fp16"), models.renamed(models.mobilenet_like(), NAMES), "precision: fp16\n")


@pytest.fixture(scope="module")
def fp32(tmp_path_factory) -> Built:
    return _build(tmp_path_factory.mktemp("fp32"), models.mobilenet_like(), "")


@pytest.fixture(scope="module")
def int8_not_measured(tmp_path_factory) -> Built:
    return _build(
        tmp_path_factory.mktemp("int8"),
        models.conv_bn_relu(),
        "precision: {mode: int8, calibration: {data: random}}\naccuracy: {samples: 4}\n",
    )


@pytest.fixture(scope="module")
def int8_held_out(tmp_path_factory) -> Built:
    folder = tmp_path_factory.mktemp("held")
    (folder / "calib").mkdir()
    rng = np.random.default_rng(5)
    for index in range(4):  # 32 real samples: every 4th is held out of calibration (8)
        np.save(folder / "calib" / f"s{index}.npy", rng.standard_normal((8, 3, 16, 16)).astype(np.float32))
    return _build(folder, models.conv_bn_relu(), "precision: {mode: int8, calibration: {data: calib}}\n")


# 1. Kernels are labelled by the ONNX nodes they cover, TensorRT's kernel name kept beside.


def _label(kernel: dict) -> tuple[str, str]:
    """The label's node part and its '+N more' suffix: the first of the model's own nodes (trtc's
    casts and Q/DQ only when the kernel covers nothing else)."""
    nodes = kernel["onnx_nodes"]
    if not nodes:
        return "no ONNX node", f" ({kernel['type']})"
    own = [n for n, op in zip(nodes, kernel["onnx_op_types"]) if not op.endswith("(added by trtc)")]
    first = (own or nodes)[0]
    return first, f" +{len(nodes) - 1} more" if len(nodes) > 1 else ""


def _time_bars(html: str) -> list[tuple[str, str]]:
    """(label, tooltip) of every bar of the estimated-time chart, unescaped."""
    chart = re.search(r'<section class="card" id="time">(.*?)</section>', html, re.S).group(1)
    bars = re.findall(r'<g class="row"><title>(.*?)</title>.*?text-anchor="end"[^>]*>(.*?)</text>', chart, re.S)
    return [(unescape(label), unescape(tooltip)) for tooltip, label in bars]


def test_the_time_chart_labels_kernels_by_their_onnx_nodes(fp16):
    kernels = fp16.report["fusion"]["kernels"]
    bars = _time_bars(fp16.html)
    assert len(bars) == len(kernels)
    for kernel, (label, tooltip) in zip(kernels, bars):
        first, more = _label(kernel)
        prefix = f"#{kernel['index']} "
        assert label.startswith(prefix) and label.endswith(more), label
        shown = label[len(prefix) : len(label) - len(more)]
        assert shown == first or (shown.endswith("…") and first.startswith(shown[:-1]) and len(shown) > 8), (
            label,
            first,
        )
        assert kernel["name"] not in label
        assert kernel["name"] in tooltip  # TensorRT's name stays at hand
    assert any(
        label.startswith(f"#{k['index']} {HOSTILE_CONV[:30]}") and HOSTILE_CONV in tooltip
        for k, (label, tooltip) in zip(kernels, bars)
    )
    assert html_problems(fp16.html, [HOSTILE_CONV, HOSTILE_BN]) == []


def test_markdown_top_kernels_are_labelled_by_their_onnx_nodes(fp16):
    kernels = {k["index"]: k for k in fp16.report["fusion"]["kernels"]}
    lines = [line for line in fp16.markdown.splitlines() if line.startswith("- #")]
    assert len(lines) == min(5, len(fp16.report["cost"]["top_kernels"]))
    for line in lines:
        kernel = kernels[int(re.match(r"- #(\d+) ", line).group(1))]
        first, more = _label(kernel)
        assert line.startswith(f"- #{kernel['index']} {code(first)}{more}"), line
        assert code(kernel["name"]) in line
    assert markdown_problems(fp16.markdown, [HOSTILE_CONV, HOSTILE_BN]) == []


# 2. Every time figure says it is an estimate, and every figure what it was computed from.


class _Units(HTMLParser):
    """The text of each unit a reader sees as one: a paragraph, list item, table, chart, tooltip
    or figure tile."""

    UNITS = {"p", "li", "table", "svg", "title", "summary"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, list[str]]] = []
        self.done: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self.UNITS or (tag == "div" and ("class", "kpi") in attrs):
            self.open.append((tag, []))
        elif tag == "div" and self.open and self.open[-1][0] == "div":
            self.open.append(("div-inner", []))

    def handle_endtag(self, tag) -> None:
        if self.open and self.open[-1][0] in (tag, "div-inner" if tag == "div" else None):
            name, parts = self.open.pop()
            if name != "div-inner":
                self.done.append("".join(parts))

    def handle_data(self, data) -> None:
        for _, parts in self.open:
            parts.append(data)


def _unlabelled_times(units: list[str]) -> list[str]:
    return [unit for unit in units if TIME.search(unit) and not re.search(r"estimat|\best\.", unit, re.I)]


def test_every_time_figure_is_labelled_an_estimate(fp16):
    assert _unlabelled_times(fp16.markdown.splitlines()) == []
    assert _unlabelled_times(fp16.stderr.splitlines()) == []
    page = _Units()
    page.feed(fp16.html)
    assert page.done and _unlabelled_times(page.done) == []


def test_the_json_says_what_each_cost_figure_is_computed_from(fp16, fp32):
    for built in (fp16, fp32):
        cost = built.report["cost"]
        basis = cost["basis"]
        assert basis["time"]["estimated"] is True and "RTX 4090" in basis["time"]["from"]
        assert basis["flops"]["estimated"] is False and basis["mac_bytes"]["estimated"] is False
        assert all(entry["from"] for entry in basis.values())
        # The fields `trtc diff` reads keep their names.
        assert cost["estimated_total_us"] > 0 and all(
            k["estimated_us"] is not None for k in built.report["fusion"]["kernels"]
        )
        # People read the same basis in every rendering.
        texts = [basis["time"]["from"], basis["flops"]["from"], basis["mac_bytes"]["from"]]
        assert markdown_problems(built.markdown, texts) == []
        assert html_problems(built.html, texts) == []
        assert basis["time"]["from"] in built.stderr


# 3. The accuracy summary opens a reduced-precision report.


def _markdown_sections(markdown: str) -> list[str]:
    return re.findall(r"^## (.*)$", markdown, re.M)


def _first_section(markdown: str) -> str:
    """The first `##` section as read: Markdown's backslash escapes removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown.split("\n## ")[1])


def _html_cards(html: str) -> list[str]:
    return re.findall(r'<section class="card" id="([^"]+)"', html)


def test_fp16_report_opens_with_accuracy_on_random_samples(fp16):
    accuracy = fp16.report["accuracy"]
    assert accuracy["status"] == "measured" and accuracy["kind"] == "random"
    assert _markdown_sections(fp16.markdown)[0] == "Accuracy against FP32"
    top = _first_section(fp16.markdown)
    assert f"{accuracy['samples']} random samples" in top and "not real data" in top
    (output,) = accuracy["outputs"]
    assert (
        f"per-sample mean {output['sample_cosine_mean']:.6f}" in top
        and f"worst sample {output['sample_cosine_worst']:.6f}" in top
    )
    assert _html_cards(fp16.html)[0] == "accuracy"
    card = re.search(r'<section class="card" id="accuracy">(.*?)</section>', fp16.html, re.S).group(1)
    assert f"{accuracy['samples']} random samples" in card and "not real data" in card
    assert f"per-sample mean {output['sample_cosine_mean']:.6f}" in card


def test_int8_report_opens_with_accuracy_on_held_out_samples(int8_held_out):
    accuracy = int8_held_out.report["accuracy"]
    assert (accuracy["status"], accuracy["kind"], accuracy["samples"], accuracy["held_out"]) == (
        "measured",
        "real",
        8,
        True,
    )
    assert _markdown_sections(int8_held_out.markdown)[0] == "Accuracy against FP32"
    top = _first_section(int8_held_out.markdown)
    assert "8 real samples, held out from calibration" in top
    assert _html_cards(int8_held_out.html)[0] == "accuracy"
    assert "8 real samples, held out from calibration" in int8_held_out.html


def test_int8_report_opens_with_not_measured(int8_not_measured):
    assert int8_not_measured.report["accuracy"]["status"] == "not measured"
    assert _markdown_sections(int8_not_measured.markdown)[0] == "Accuracy against FP32"
    assert _first_section(int8_not_measured.markdown).splitlines()[2].startswith("Not measured: accuracy.samples is 4")
    assert _html_cards(int8_not_measured.html)[0] == "accuracy"
    assert "not measured" in re.search(
        r'<section class="card" id="accuracy">(.*?)</section>', int8_not_measured.html, re.S
    ).group(1)


def test_fp32_report_has_no_accuracy_section(fp32):
    assert "Accuracy against FP32" not in fp32.markdown and 'id="accuracy"' not in fp32.html


# 4. Repeated pass changes read as one line with a count and the names.


def test_identical_pass_changes_are_one_line_with_a_count_and_every_name(fp16):
    changes = [c for c in fp16.report["passes"]["changes"] if c["pass_name"] == "fold-batchnorm"]
    assert len(changes) == 10 and len({c["note"] for c in changes}) == 1
    names = [n for c in changes for n in c["nodes_before"]]
    rows = [line for line in fp16.markdown.splitlines() if line.startswith("| fold-batchnorm |")]
    assert len(rows) == 1
    (row,) = rows
    assert row.startswith("| fold-batchnorm | 10 |")
    assert all(code(name) in row for name in names)
    flops = f"{human(sum(c['flops_before'] for c in changes), 'FLOP')} -> {human(sum(c['flops_after'] for c in changes), 'FLOP')}"
    assert flops in row
    assert markdown_problems(fp16.markdown, names) == []

    passes = re.search(r'<section class="card" id="passes">(.*?)</section>', fp16.html, re.S).group(1)
    html_rows = re.findall(r"<tr>(.*?)</tr>", passes, re.S)
    grouped = [r for r in html_rows if ">fold-batchnorm<" in r]
    assert len(grouped) == 1
    assert re.search(r"<details><summary>10 changes", grouped[0])
    assert all(f'<span class="chip">{n}</span>' in unescape(grouped[0]) for n in names)
    assert html_problems(fp16.html, names) == []
    # One change alone stays one line as before.
    assert len([r for r in html_rows if ">remove-noops<" in r]) == 1 and "<details>" not in next(
        r for r in html_rows if ">remove-noops<" in r
    )

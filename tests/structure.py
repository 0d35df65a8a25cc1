"""Checks that names taken from a model appear in trtc's outputs as text and change nothing of
their structure: Markdown (parsed by markdown-it, a CommonMark parser, with GFM tables), HTML
(parsed by html.parser), rich console output and Make dependency files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from trtc.printable import one_line

REPORT_HEADINGS = {
    "Inputs and outputs",
    "Pinned inputs and resolved control flow",
    "Graph passes",
    "Cost",
    "Fusion map",
    "ONNX nodes no kernel runs",
    "Quantization",
    "Precision",
    "Accuracy against FP32",
    "Warnings",
}
_ALLOWED_BLOCKS = {
    "heading",
    "paragraph",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "bullet_list",
    "list_item",
    "inline",
}


def markdown_problems(source: str, names: list[str], strong: int = 0) -> list[str]:
    """What a name changed in Markdown `source`: new headings, blocks, links, HTML, emphasis or table
    cells, or a name that does not read as written. `strong`: bold spans trtc wrote itself."""
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    problems = []
    for index, token in enumerate(tokens):
        kind = token.type.removesuffix("_open").removesuffix("_close")
        if kind not in _ALLOWED_BLOCKS:
            problems.append(f"a {token.type} block")
        if token.type == "heading_open":
            title = tokens[index + 1].content
            if not (token.tag == "h1" and title.startswith("trtc build report: ") or title in REPORT_HEADINGS):
                problems.append(f"a heading {title!r}")
        if token.type == "list_item_open" and tokens[index + 1].type != "paragraph_open":
            problems.append("a list item that is not one paragraph")
        if token.type == "bullet_list_open" and token.level > 0:
            problems.append("a nested list")
    inline = [child for token in tokens if token.type == "inline" for child in token.children]
    problems += [
        f"inline {child.type}"
        for child in inline
        if child.type in ("link_open", "image", "em_open", "s_open", "softbreak", "hardbreak")
    ]
    problems += [
        f"inline HTML {child.content!r}"
        for child in inline
        if child.type == "html_inline" and child.content not in ("<code>", "</code>")
    ]
    if sum(child.type == "strong_open" for child in inline) != strong:
        problems.append("bold text")
    problems += _table_problems(source)
    shown = "".join(child.content for child in inline if child.type in ("text", "code_inline"))
    problems += [f"{name!r} is not shown as written" for name in names if one_line(name) not in shown]
    return problems


def _table_problems(source: str) -> list[str]:
    """GFM splits table rows at every pipe not escaped by a backslash (even in code spans), and a
    renderer drops cells beyond the header's count: every row must have the header's cells."""
    problems, header = [], None
    for line in source.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))
        header = cells if header is None else header
        if cells != header:
            problems.append(f"a table row with {cells - 1} cells instead of {header - 1}: {line}")
    return problems


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data):
        self.text.append(data)


def _renderer_vocabulary() -> tuple[set[str], set[str]]:
    """Every tag and attribute name the HTML renderer's own source writes."""
    source = "".join(
        path.read_text() for path in (Path(__file__).parents[1] / "trtc" / "report").glob("*.py")
    )  # html.py and its cards' modules write the page
    tags = re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", source)
    attributes = re.findall(r"([a-zA-Z][a-zA-Z0-9-]*)=\\?[\"']", source)
    return {tag.lower() for tag in tags}, {name.lower() for name in attributes}  # as html.parser reports them


def html_problems(page: str, names: list[str]) -> list[str]:
    parsed = _Page()
    parsed.feed(page)
    tags, attributes = _renderer_vocabulary()
    problems = [f"a <{tag}> element" for tag in sorted(parsed.tags - tags - {"!doctype"})]
    problems += [f"an attribute {name!r}" for name in sorted(parsed.attributes - attributes)]
    text = "".join(parsed.text)
    return problems + [
        f"{name!r} is not shown as written" for name in names if name.strip() and name.strip() not in text
    ]


def console_problems(output: str, names: list[str]) -> list[str]:
    """rich markup in a name would vanish or crash trtc ("internal error"); names without control
    characters (which rich shows differently) must appear as written."""
    problems = ["internal error"] if "internal error" in output or "Traceback" in output else []
    return problems + [
        f"{name!r} is not shown as written" for name in names if one_line(name) == name and name not in output
    ]


def make_reads(folder: Path) -> subprocess.CompletedProcess:
    """`make -q` in `folder`: 0 when it parsed its Makefile and found the goal up to date."""
    require_make()
    return subprocess.run(
        ["make", "-q", "--no-print-directory"], cwd=folder, capture_output=True, text=True, timeout=60
    )


def require_make() -> None:
    """GNU Make for the dependency-file tests: skipped where it is missing, except under CI."""
    if shutil.which("make") is None:
        if os.environ.get("CI"):
            pytest.fail("GNU Make is missing under CI: install it (apt-get install -y make)")
        pytest.skip("GNU Make is not installed (apt-get install -y make)")

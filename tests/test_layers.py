"""The tree shows the architecture: the core packages know nothing of the commands or the CLI,
the top of trtc/ holds only entry points and what every layer uses, and the README's layout
section names every package and top-level module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "trtc"
README = PACKAGE.parent / "README.md"

CORE = ("spec", "graph", "passes", "precision", "backend", "report", "incremental")
ABOVE_THE_CORE = ("trtc.commands", "trtc.cli", "trtc.console", "trtc.terminal", "trtc.entry")
TOP = {
    "__init__",
    "__main__",
    "cli",
    "cli_support",
    "console",
    "console_batch",
    "terminal",
    "entry",
    "errors",
    "hashing",
    "inputs",
    "interrupts",
    "memory",
    "outputs",
    "printable",
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_core_never_imports_the_commands_or_the_cli():
    offenders = {}
    for package in CORE:
        for path in (PACKAGE / package).rglob("*.py"):
            above = sorted(m for m in imported_modules(path) if m.startswith(ABOVE_THE_CORE))
            if above:
                offenders[path.relative_to(PACKAGE).as_posix()] = above
    assert offenders == {}


def test_the_top_of_the_package_holds_only_entry_points_and_shared_modules():
    assert {path.stem for path in PACKAGE.glob("*.py")} == TOP
    assert {path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"} == {
        *CORE,
        "commands",
    }


def test_the_readme_layout_names_every_package_and_top_level_module():
    layout = README.read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    missing = [f"trtc/{package}/" for package in (*CORE, "commands") if f"trtc/{package}/" not in layout]
    missing += [f"{module}.py" for module in sorted(TOP - {"__init__", "__main__"}) if f"{module}.py" not in layout]
    assert missing == []

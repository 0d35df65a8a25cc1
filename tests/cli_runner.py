"""The CLI run in-process, as every CLI test uses it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from trtc.cli import main


def run(*args, env: dict | None = None):
    """`trtc ARGS...`; the result has exit_code, stdout, stderr and output."""
    return CliRunner(env=env).invoke(main, list(map(str, args)))


def snapshot(folder: Path) -> list[str]:
    """Every path under `folder`, to compare before and after a command."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))

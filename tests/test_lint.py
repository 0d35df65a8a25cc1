"""The code is formatted and lint-clean by the project's ruff configuration (pyproject.toml):
CI runs the README's test command, so this is where ruff runs in CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ["trtc", "tests", "benchmarks"]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *CODE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_check_is_clean():
    result = ruff("check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_the_code_as_it_is():
    result = ruff("format", "--check", "--no-cache")
    assert result.returncode == 0, "run `ruff format` (trtc, tests, benchmarks):\n" + result.stdout + result.stderr

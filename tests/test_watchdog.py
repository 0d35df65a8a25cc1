"""The test run cannot hang: a test stuck in native code holding the GIL ends the run, stacks printed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# TensorRT-RTX's own deadlock (no trtc code): the collector frees an older builder inside the
# logger callback of a new one, and that destructor waits for the mutex the creation holds.
NATIVE_HANG = """
import gc
import tensorrt_rtx as trt

import pytest

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


class Logger(trt.ILogger):
    def __init__(self, collect):
        trt.ILogger.__init__(self)
        self.collect = collect

    def log(self, severity, message):
        if self.collect:
            gc.collect()


def test_hangs_in_native_code():
    first = trt.Builder(Logger(False))
    cycle = [first]
    cycle.append(cycle)
    del first, cycle
    trt.Builder(Logger(True))
"""


@pytest.mark.build  # TensorRT-RTX's own deadlock, in a child pytest: seconds
def test_a_native_deadlock_fails_the_run_with_stacks_instead_of_hanging(tmp_path: Path):
    (tmp_path / "test_native_hang.py").write_text(NATIVE_HANG)
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.watchdog",
            "-c",
            str(REPO / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "--timeout=3",
            str(tmp_path / "test_native_hang.py"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert time.monotonic() - started < 60
    assert "Timeout" in done.stdout + done.stderr
    assert "in test_hangs_in_native_code" in done.stdout + done.stderr

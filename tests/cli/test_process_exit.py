"""`python -m trtc` as a process: it ends without tearing the interpreter down, and still says
everything and exits with the CLI's code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import models


def trtc(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trtc", *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.build
def test_a_build_process_prints_all_of_its_json_and_exits_0(model_dir):
    spec = models.write_spec(model_dir, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    done = trtc("build", spec, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # flushed whole before the process ended
    assert result["exit_code"] == 0 and result["builds"][0]["status"] == "built"
    assert (model_dir / "build" / "spec.plan").stat().st_size == result["builds"][0]["report"]["build"]["plan_bytes"]


def test_a_failing_process_keeps_its_exit_code_and_its_one_line(tmp_path):
    done = trtc("build", tmp_path / "missing.yaml")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1


def _ends_clean_while(tmp_path, work: str, threads: int = 1) -> None:
    """`python -m trtc`'s own exit (trtc/entry.py, code 130) while `threads` threads run `work()`,
    defined in the source `work` (it sets `started`): the exit leaves nothing in the temp folder."""
    script = f"""
import functools, shutil, sys, tempfile, threading, time
tempfile.tempdir = {str(tmp_path)!r}
import trtc.cli
from trtc import interrupts
from trtc.entry import run

{work}

def main():
    for _ in range({threads}):
        threading.Thread(target=work, daemon=True).start()
    started.wait()
    sys.exit(130)

started = threading.Event()
trtc.cli.main = main
run()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_files_of_work_still_running_at_exit_are_removed(tmp_path):
    """The process ends without unwinding its threads: one still inside a temporary folder (an
    onnxruntime session loading beside TensorRT's build when an interrupted build returned)
    would leave it behind."""
    loading_forever = """
def work():
    with tempfile.TemporaryDirectory(prefix="trtc-ort-") as folder, \\
            interrupts.cleanup_on_forced_exit(functools.partial(shutil.rmtree, folder, ignore_errors=True)):
        started.set()
        time.sleep(600)
"""
    _ends_clean_while(tmp_path, loading_forever)


def test_no_temporary_folder_is_made_once_the_exit_has_begun(tmp_path):
    """Threads making onnxruntime's temporary folders over and over while the process ends: a
    folder made after the exit's cleanups ran, made but not yet known to them, or still being
    written while they removed it, stayed behind."""
    loading_again_and_again = """
def work():
    while True:
        with interrupts.temporary_folder("trtc-ort-", {"model.onnx": bytes(1 << 20), "data": b""}):
            started.set()
"""
    for _ in range(5):
        _ends_clean_while(tmp_path, loading_again_and_again, threads=4)

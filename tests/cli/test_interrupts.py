"""Ctrl-C (SIGINT, to trtc or to its whole process group) and SIGTERM stop `trtc build` within
2 s in every phase, exit 130 / 143, and leave the output folder exactly as it was. Real `trtc
build` processes, each signalled when its progress lines on stderr say it reached the phase."""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import models

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

STOP_SECONDS = 2.0
EARLIER = b"an earlier build's output\n"


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Path:
    """600 convolutions: loading, passes, calibration and TensorRT's build each last long enough
    to be hit (TensorRT-RTX spends seconds in native code without calling back into Python)."""
    return models.save(models.conv_chain(600), tmp_path_factory.mktemp("chain") / "model.onnx")


@dataclass
class Stopped:
    exit_code: int | None  # None: still running 30 s after the signal
    seconds: float  # from the signal to the exit of the trtc process
    stderr: str
    survivors: list[str]  # processes of trtc's session still running after it exited


class Build:
    """A spec in `folder/work` whose outputs already exist (an earlier build's), and a private
    temp folder, so that anything an interrupted build leaves behind shows."""

    def __init__(self, folder: Path):
        self.work, self.temp = folder / "work", folder / "tmp"
        self.temp.mkdir()

    def spec(self, model: Path, text: str = "", name: str = "spec") -> Path:
        build = self.work / "build"
        build.mkdir(parents=True, exist_ok=True)
        for suffix in (".plan", ".report.json", ".report.md", ".report.html", ".build.log"):
            (build / f"{name}{suffix}").write_bytes(EARLIER)
        return models.write_spec(
            self.work,
            f"model: {model}\nmax_batch: 4\n{text}"
            f"output: {{plan: build/{name}.plan, report: build/{name}.report.json}}\n",
            f"{name}.yaml",
        )

    def snapshot(self) -> dict[str, tuple[int, str] | None]:
        """Every file with its time and content, every folder (a temporary file made and removed
        again would change a folder's time, not what it holds)."""
        return {
            str(p.relative_to(self.work)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            if p.is_file()
            else None
            for p in sorted(self.work.rglob("*"))
        }

    def left_in_temp(self) -> list[str]:
        # plan locks are kept by design; .ses is TensorRT-RTX's own session file
        return sorted(p.name for p in self.temp.iterdir() if not p.name.startswith("trtc-locks-") and p.name != ".ses")

    def interrupt(self, args: list[str], ready, signum: int, group: bool = True, after: float = 0.0) -> Stopped:
        """Run `trtc build ARGS`; once `ready` (a text on a stderr line, or a test of all lines so far)
        holds, wait `after` seconds and send `signum` to trtc's process group (Ctrl-C in a terminal)
        or to trtc alone."""
        if isinstance(ready, str):
            ready = lambda lines, marker=ready: any(marker in line for line in lines)  # noqa: E731
        env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(self.temp)}
        process = subprocess.Popen(
            [sys.executable, "-m", "trtc", "build", *args],
            cwd=self.work,
            env=env,
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(line) for line in process.stderr] + [lines.put(None)], daemon=True
        ).start()
        seen: list[str] = []
        try:
            deadline = time.monotonic() + 180
            while not ready(seen):
                assert time.monotonic() < deadline, "".join(seen)
                try:
                    line = lines.get(timeout=0.05)
                except queue.Empty:
                    continue
                assert line is not None, f"trtc ended before it was ready to be interrupted:\n{''.join(seen)}"
                seen.append(line)
            time.sleep(after)
            sent = time.monotonic()
            os.killpg(process.pid, signum) if group else os.kill(process.pid, signum)
            try:
                exit_code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                exit_code = None
            seconds = time.monotonic() - sent
            survivors = _session(process.pid)
            _kill_session(process.pid)  # survivors would hold stderr open
            while (line := lines.get(timeout=10)) is not None:
                seen.append(line)
            return Stopped(exit_code, seconds, "".join(seen), survivors)
        finally:
            _kill_session(process.pid)
            process.wait()


def _session(session: int, patience: float = 1.0) -> list[str]:
    """Live processes of a session; multiprocessing's resource tracker may take a moment to see
    its last user go."""
    deadline = time.monotonic() + patience
    while True:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z" and int(fields[3]) == session:
                    alive.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except (OSError, IndexError, ValueError):
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _kill_session(session: int) -> None:
    try:
        os.killpg(session, signal.SIGKILL)  # the session leader's group: trtc and its workers
    except ProcessLookupError:
        pass


def assert_stopped_cleanly(build: Build, before: dict, stopped: Stopped, signum: int) -> None:
    tail = "".join(stopped.stderr.splitlines(keepends=True)[-8:])
    assert (stopped.exit_code, stopped.seconds < STOP_SECONDS) == (128 + signum, True), (
        f"{stopped.seconds:.1f} s\n{tail}"
    )
    assert build.snapshot() == before  # the earlier plan and reports untouched, nothing new
    assert build.left_in_temp() == []
    assert stopped.survivors == []
    assert "nothing was written" in tail


SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM
CASES = {  # phase: (signal, to the process group?, stderr marker, seconds to wait after it, spec text, extra arguments)
    "loading": (SIGTERM, False, "trtc: loading model", 0.0, "", []),
    "graph passes": (SIGTERM, True, "trtc: running graph passes", 0.0, "", []),
    # One onnxruntime run at batch 256 takes seconds and runs no Python meanwhile; the wait
    # lets the verification's first session start beside TensorRT's build (no progress line
    # says when it runs).
    "verification": (
        SIGINT,
        True,
        "verifying the graph passes in onnxruntime meanwhile",
        0.6,
        "fusion: {verify: full}\n",
        ["--set", "max_batch=256"],
    ),
    "calibration": (
        SIGTERM,
        False,
        "trtc: converting to int8",
        0.0,
        "precision: {mode: int8, calibration: {data: random, samples: 4096, batch: 32}}\n",
        [],
    ),
    # TensorRT's progress monitor is called right after this line: it cancels the build
    "tensorrt build": (SIGINT, True, "Building engine from subgraph", 0.0, "", []),
    # a second later TensorRT-RTX is in a native step of seconds without any callback (no line marks it)
    "tensorrt native step": (SIGTERM, False, "Building engine from subgraph", 1.0, "", []),
    "writing outputs": (SIGTERM, False, "trtc: writing outputs", 0.0, "", []),
}


@pytest.mark.parametrize("phase", list(CASES))
def test_a_signal_stops_the_build_in_every_phase_and_changes_nothing(tmp_path, chain, phase):
    signum, group, marker, wait, text, args = CASES[phase]
    build = Build(tmp_path)
    spec = build.spec(chain, text)
    before = build.snapshot()
    stopped = build.interrupt([str(spec), "--force", *args], marker, signum, group, after=wait)
    assert_stopped_cleanly(build, before, stopped, signum)


def test_ctrl_c_stops_the_diagnosis_sub_builds(tmp_path):
    """The sub-builds that bisect a builder failure run without an observer; they are cancelled too."""
    build = Build(tmp_path)
    model = models.save(models.conv_chain(600, gemm_head=True), tmp_path / "model.onnx")
    spec = build.spec(model, "target: {compute_capabilities: [7.5]}\n")  # an FP32 Gemm cannot be built for Turing
    before = build.snapshot()
    stopped = build.interrupt([str(spec), "--force"], "trtc: diagnosing the failure", SIGINT, after=0.5)
    assert_stopped_cleanly(build, before, stopped, SIGINT)


def test_sigterm_to_a_parallel_build_stops_every_worker(tmp_path, chain):
    """SIGTERM to trtc alone (a CI runner cancelling the job) reaches the workers: none survives, none writes."""
    build = Build(tmp_path)
    specs = [str(build.spec(chain, name=name)) for name in ("first", "second")]
    before = build.snapshot()
    stopped = build.interrupt(
        [*specs, "--force", "-j", "2"],
        lambda lines: all(any(f"[{name}]   Building engine" in line for line in lines) for name in ("first", "second")),
        SIGTERM,
        group=False,
    )
    tail = "".join(stopped.stderr.splitlines(keepends=True)[-6:])
    assert (stopped.exit_code, stopped.seconds < STOP_SECONDS, stopped.survivors) == (143, True, []), tail
    assert build.snapshot() == before
    assert build.left_in_temp() == []
    assert "not written: first, second" in tail


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_during_several_builds_says_which_specs_were_written(tmp_path, chain, jobs):
    build = Build(tmp_path)
    small = models.save(models.conv_bn_relu(), tmp_path / "small.onnx")
    specs = [str(build.spec(small, name="small")), str(build.spec(chain, name="big"))]
    before = build.snapshot()
    small_plan = build.work / "build" / "small.plan"
    stopped = build.interrupt(
        [*specs, "--force", "-j", jobs],
        lambda lines: small_plan.read_bytes() != EARLIER and any("[big]   Building engine" in line for line in lines),
        SIGINT,
    )
    tail = "".join(stopped.stderr.splitlines(keepends=True)[-6:])
    assert (stopped.exit_code, stopped.seconds < STOP_SECONDS, stopped.survivors) == (130, True, []), tail
    after = build.snapshot()
    assert {name for name in after if after[name] != before.get(name)} == {
        f"build/small{suffix}" for suffix in (".plan", ".report.json", ".report.md", ".report.html", ".build.log")
    }
    assert build.left_in_temp() == []
    assert "written: small; not written: big" in tail


def test_no_commit_starts_once_a_signal_arrived(tmp_path):
    """The commit point: a signal recorded while TensorRT ran (deferred, not raised) stops the
    rename of every staged output; the earlier file stays."""
    from trtc import interrupts
    from trtc.outputs import StagedOutputs

    target = tmp_path / "model.plan"
    target.write_bytes(EARLIER)
    with pytest.raises(interrupts.Interrupted) as stopped:
        with interrupts.handling(lambda signal_number: None), StagedOutputs() as staged:
            staged.write(target, b"new plan")
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
            staged.commit()
    assert stopped.value.exit_code == 130
    assert [p.name for p in tmp_path.iterdir()] == ["model.plan"] and target.read_bytes() == EARLIER


def test_discarding_staged_outputs_waits_for_a_forced_exit_and_is_not_cut_in_two(tmp_path):
    """A forced exit runs the cleanups under the interrupts lock. The main thread discarding its
    staged outputs at the same moment (the signal's exception unwinding) forgot its cleanup
    first and removed the files after: an exit between the two left a .partial behind. Discarding
    now holds the same lock, so the exit runs before it or after it, never in between."""
    import threading

    from trtc import interrupts
    from trtc.outputs import StagedOutputs

    staged = StagedOutputs()
    partial = staged.write(tmp_path / "model.plan", b"new plan")
    discarding = threading.Thread(target=staged.discard)
    with interrupts.cleaning_up():  # as the forced exit holds it
        discarding.start()
        discarding.join(0.5)
        assert discarding.is_alive() and partial.exists()  # waiting, nothing forgotten or removed yet
    discarding.join()
    assert list(tmp_path.iterdir()) == []


def test_a_writer_thread_never_started_does_not_stop_the_discard(tmp_path):
    """A signal between registering the plan's writer thread and starting it made `discard`
    join a thread never started: it raised, and the staged .partial stayed behind (exit 143)."""
    import threading

    from trtc.outputs import StagedOutputs

    staged = StagedOutputs()
    staged.write(tmp_path / "model.plan", b"new plan")
    staged._writers.append(threading.Thread(target=lambda: None))  # as the signal left it
    staged.discard()
    assert list(tmp_path.iterdir()) == []

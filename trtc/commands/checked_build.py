"""TensorRT builds while trtc checks: the build of the rewritten graph starts as soon as the graph
is ready, and the checks that do not decide what TensorRT builds (the output-shape check, the
verification of the passes, the costs; trtc/graph_checks.py) run beside it in a thread, from the
moment TensorRT's parser has read the graph (the parser calls Python's logger about 4000 times on
a ResNet-50, each call waiting for the GIL while the checks import onnxruntime and run Python:
its parse took 0.40-0.65 s beside them, 0.18-0.24 s alone).

TensorRT's parse and build and onnxruntime's session start and runs release the GIL, so on a
machine with a free core the checks cost no wall time (measured: a Python thread counting beside
`build_serialized_network` kept 50-65% of its speed, beside onnxruntime's session start 80%).

TensorRT stays in the main thread, under its lifetime rules (trtc/backend/lifetime.py): the
worker never touches a TensorRT object and never calls the collector, which is paused anyway
while a TensorRT scope is open. When the main thread stops early (a build error, Ctrl-C), the
worker is told to stop after its current onnxruntime run and nothing it found is used; outputs
are written by the main thread only, after both are done."""

from __future__ import annotations

import threading

from trtc.backend.builder import BuildObserver, BuildResult, BuildSettings, ModelSource, build_plan
from trtc.backend.trt_import import TensorRT
from trtc.commands.graph_checks import ChecksJob, ChecksOutcome, run_checks
from trtc.commands.timing import PhaseTimer
from trtc.errors import TrtcError


class ChecksFailed(Exception):
    """The checks failed with an error of their own (`verify: strict` found a changed output),
    which is the build's error: there is no TensorRT failure to diagnose."""

    def __init__(self, error: TrtcError):
        super().__init__(error.message)
        self.error = error


class _Checks(threading.Thread):
    def __init__(self, job: ChecksJob):
        # A daemon: a process that ends on an interrupt does not wait for the current onnxruntime run.
        super().__init__(name="trtc-checks", daemon=True)
        self.job, self.stop = job, threading.Event()
        self.outcome: ChecksOutcome | None = None
        self.error: BaseException | None = None

    def begin(self) -> None:
        if self.ident is None:  # not started yet
            self.start()

    def run(self) -> None:
        try:
            self.outcome = run_checks(self.job, self.stop)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, which raises it
            self.error = error
        finally:
            self.job = None  # the models it held can go as soon as the checks end

    def result(self) -> ChecksOutcome:
        while self.is_alive():
            self.join(0.1)  # in slices: the main thread stays responsive to signals
        if isinstance(self.error, TrtcError):
            raise ChecksFailed(self.error)
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


def build_beside_checks(
    trt: TensorRT,
    source: ModelSource,
    settings: BuildSettings,
    job: ChecksJob,
    observer: BuildObserver | None,
    timer: PhaseTimer,
) -> tuple[BuildResult | None, ChecksOutcome]:
    """The plan of `source` and the checks' outcome. When verification dropped a change the plan
    is of no use (the caller builds the repaired graph): it is None if TensorRT failed on the
    unrepaired graph, whose failure the dropped change may have caused."""
    checks = _Checks(job)
    try:
        try:
            with timer.phase("tensorrt"):
                result = build_plan(trt, source, settings, observer, after_parse=checks.begin)
        except TrtcError:
            checks.begin()  # TensorRT failed before it parsed: the checks may still find the cause
            with timer.phase("waiting for checks"):
                outcome = checks.result()  # a strict verification's error comes first, as it did before the build
            if outcome.repaired is None:
                raise
            return None, outcome
        checks.begin()  # (a stand-in for `build_plan` may not call it)
        with timer.phase("waiting for checks"):
            outcome = checks.result()
    except BaseException:
        checks.stop.set()
        raise
    timer.beside.update(outcome.seconds)
    return result, outcome

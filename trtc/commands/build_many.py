"""Several specs in one `trtc build`: output collisions refused before anything runs, then the
builds in parallel processes (TensorRT's builder holds the GIL for long stretches, and a crash in
one build must not take the others down).

A signal to trtc (SIGINT, SIGTERM) stops every build: the workers get it too (forwarded, or from
the terminal with the whole process group), are given GRACE_SECONDS to end, then killed; no worker
outlives trtc. Each spec's result says whether its outputs were written."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

from trtc import interrupts
from trtc.commands.build_job import (
    FAILED,
    INTERRUPTED,
    JobOptions,
    JobResult,
    interrupted_result,
    run_job_reporting_errors,
)
from trtc.errors import UsageError
from trtc.incremental.clashes import build_inputs, build_outputs, refuse_clashes
from trtc.interrupts import Interrupted
from trtc.outputs import committed
from trtc.spec.model import Spec


def refuse_collisions(specs: list[Spec]) -> None:
    """Two specs that write one file would overwrite each other's results: say which, up front."""
    sources = [spec.source for spec in specs]
    for source in sources:
        if sources.count(source) > 1:
            raise UsageError(f"{source} is named twice; name each spec once")
    owners: dict[Path, Spec] = {}
    for spec in specs:
        for _, path in build_outputs(spec):
            other = owners.get(path)
            if other is not None and other is not spec:
                raise UsageError(
                    f"{other.source} and {spec.source} both write {path}; give one of them another output: path"
                )
            owners[path] = spec
    for spec in specs:  # one spec's output must not be what another reads
        inputs = [
            (f"{other.source}'s {name}", path)
            for other in specs
            if other is not spec
            for name, path in build_inputs(other)
        ]
        refuse_clashes([(f"{spec.source}: {name}", path) for name, path in build_outputs(spec)], inputs)


def build_many(
    specs: list[Spec], options: JobOptions, jobs: int, observer_for: Callable[[Spec], object]
) -> list[JobResult]:
    """Results in the order of `specs`. `observer_for` must be picklable (it runs in the workers)."""
    refuse_collisions(specs)
    if jobs <= 1 or len(specs) == 1:
        return _one_after_another(specs, options, observer_for)
    return _in_processes(specs, options, min(jobs, len(specs)), observer_for)


def _one_after_another(specs: list[Spec], options: JobOptions, observer_for) -> list[JobResult]:
    results: list[JobResult] = []
    for spec in specs:
        written_before, started = len(committed()), time.perf_counter()
        try:
            results.append(run_job_reporting_errors(spec, observer_for(spec), options))
        except Interrupted as stop:
            interrupts.acknowledge()
            results.append(interrupted_result(spec, stop, committed()[written_before:], time.perf_counter() - started))
            return results + [interrupted_result(later, stop, None) for later in specs[len(results) :]]
    return results


class _Worker:
    """One spec's build in a spawned process (not forked: TensorRT and onnxruntime keep threads
    that a forked child would inherit broken), its result sent back through a pipe."""

    def __init__(self, context, spec: Spec, options: JobOptions, observer_for):
        self.spec, self.started = spec, time.perf_counter()
        self.connection, child_end = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_work, args=(child_end, spec, options, observer_for), name=f"trtc {spec.name}"
        )
        self.process.start()
        child_end.close()
        self.result: JobResult | None = None

    def collect(self) -> bool:
        """Read the result if it is there; True once the worker is done (result read or process gone)."""
        with interrupts.deferred():  # a result half read would be lost
            if self.result is None and self.connection.poll():
                try:
                    self.result = self.connection.recv()
                except (EOFError, OSError):
                    pass
        done = self.result is not None or not self.process.is_alive()
        if done:
            self.process.join()
            self.connection.close()
        return done

    def outcome(self, stop: Interrupted | None) -> JobResult:
        if self.result is not None:
            return self.result
        seconds, code = time.perf_counter() - self.started, self.process.exitcode
        if stop is not None or code in (128 + signal_number for signal_number in interrupts.SIGNALS):
            # A worker ends without a result only outside its commit (trtc/outputs.py): nothing written.
            return interrupted_result(self.spec, stop or Interrupted(code - 128), [], seconds)
        return JobResult(
            self.spec.name,
            str(self.spec.source),
            FAILED,
            1,
            "build process died",
            seconds,
            error=f"the build process for {self.spec.source} died (exit code {code})",
        )


def _in_processes(specs: list[Spec], options: JobOptions, jobs: int, observer_for) -> list[JobResult]:
    context = multiprocessing.get_context("spawn")
    results: dict[int, JobResult] = {}
    running: dict[int, _Worker] = {}
    waiting = list(range(len(specs)))
    try:
        with interrupts.cleanup_on_forced_exit(lambda: _signal(running, interrupts.requested() or signal.SIGTERM)):
            while waiting or running:
                while waiting and len(running) < jobs:
                    index = waiting.pop(0)
                    with interrupts.blocked():  # registered in `running` before a signal can stop this loop
                        running[index] = _Worker(context, specs[index], options, observer_for)
                _await(running, results, None, None)
                interrupts.check()  # a signal while a result was being read
    except Interrupted as stop:
        interrupts.acknowledge()
        _signal(running, stop.signal_number)  # SIGTERM to trtc alone reaches no worker
        deadline = time.monotonic() + interrupts.GRACE_SECONDS + 0.5
        while running and time.monotonic() < deadline:
            _await(running, results, stop, deadline - time.monotonic())
        for index, worker in list(running.items()):
            worker.process.kill()
            worker.process.join()
            worker.collect()
            results[index] = worker.outcome(stop)
            del running[index]
        for index in waiting:
            results[index] = interrupted_result(specs[index], stop, None)
    finally:
        for worker in running.values():  # only after a trtc bug: still no worker outlives trtc
            worker.process.kill()
    return [results[index] for index in range(len(specs))]


def _signal(running: dict[int, _Worker], signal_number: int) -> None:
    for worker in list(running.values()):
        try:
            os.kill(worker.process.pid, signal_number)
        except ProcessLookupError:
            pass


def _await(
    running: dict[int, _Worker], results: dict[int, JobResult], stop: Interrupted | None, timeout: float | None
) -> None:
    """Wait until a worker sends its result or ends; move finished ones to `results`."""
    wait([w.connection for w in running.values()] + [w.process.sentinel for w in running.values()], timeout)
    for index, worker in list(running.items()):
        if worker.collect():
            results[index] = worker.outcome(stop)
            del running[index]


def _work(connection, spec: Spec, options: JobOptions, observer_for) -> None:
    """A worker process: build one spec, send the result, exit 130/143 when a signal stopped it."""
    started = time.perf_counter()
    try:
        with interrupts.handling(lambda signal_number: None):  # the parent reports a worker that ends without a result
            try:
                result = run_job_reporting_errors(spec, observer_for(spec), options)
            except Interrupted as stop:
                interrupts.acknowledge()
                result = interrupted_result(spec, stop, committed(), time.perf_counter() - started)
            with interrupts.deferred():  # a signal now must not cut the message in half
                connection.send(result)
                connection.close()
    finally:
        # The process ends without unwinding its threads, as trtc's own does (trtc/entry.py): an
        # onnxruntime session still loading beside an interrupted build leaves its folder otherwise.
        interrupts.clean_up_at_exit()
    if result.status == INTERRUPTED:
        raise SystemExit(result.exit_code)

"""One `trtc build` of one spec as Make would want it: under the plan's lock, skipped when up to
date, and a dependency file written for the next run. The CLI renders the `JobResult`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from trtc import interrupts
from trtc.errors import TrtcError
from trtc.incremental import depfile
from trtc.incremental.clashes import build_inputs, build_outputs, refuse_clashes
from trtc.incremental.fingerprint import data_inputs
from trtc.incremental.lock import plan_lock
from trtc.incremental.up_to_date import up_to_date_verdict
from trtc.spec.model import Spec

BUILT, UP_TO_DATE, FAILED, INTERRUPTED = "built", "up to date", "failed", "interrupted"


@dataclass(frozen=True)
class JobOptions:
    force: bool = False
    depfile: Path | None = None
    diagnose: bool = True


@dataclass
class JobResult:
    """What happened to one spec; plain data, so it crosses process boundaries."""

    name: str
    spec: str
    status: str  # BUILT, UP_TO_DATE, FAILED or INTERRUPTED
    exit_code: int
    reason: str  # why it was (re)built, or why not
    seconds: float
    report: dict | None = None
    written: list[str] = field(default_factory=list)
    error: str | None = None
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "spec": self.spec,
            "status": self.status,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "written": self.written,
            "error": None if self.error is None else {"message": self.error, "details": self.details},
            "report": self.report,
        }


def run_job(spec: Spec, observer, options: JobOptions) -> JobResult:
    """Build `spec` unless it is up to date. Raises TrtcError when the build fails."""
    started = time.perf_counter()
    refuse_clashes(build_outputs(spec, options.depfile), build_inputs(spec))  # before anything runs or is written
    with plan_lock(spec.output.plan, observer.warning):
        verdict = None if options.force else up_to_date_verdict(spec)  # --force: not even the hashing
        if verdict is not None and verdict.up_to_date:
            if options.depfile:
                refuse_clashes(
                    [("--depfile", options.depfile)], [("an input of the build", p) for p in verdict.fingerprint.inputs]
                )
                depfile.write(options.depfile, _targets(spec), [spec.source, *verdict.fingerprint.inputs])
            return JobResult(
                spec.name,
                str(spec.source),
                UP_TO_DATE,
                0,
                "up to date",
                time.perf_counter() - started,
                report=verdict.report,
                written=[],
            )
        if (
            options.depfile
        ):  # a name Make cannot express is refused before any work (external data: once the model is read)
            depfile.render(_targets(spec), [spec.source, spec.model, *data_inputs(spec)])
        from trtc.commands.pipeline import build  # imports onnx, onnxruntime, TensorRT: only when there is work to do

        reason = "--force" if verdict is None else verdict.reason
        observer.stage(f"building {spec.name} ({reason})")
        outcome = build(
            spec,
            observer,
            diagnose=options.diagnose,
            depfile_path=options.depfile,
            known_fingerprint=verdict and verdict.fingerprint,
        )
    return JobResult(
        spec.name,
        str(spec.source),
        BUILT,
        0,
        reason,
        time.perf_counter() - started,
        report=outcome.report,
        written=[str(p) for p in outcome.written],
    )


def run_job_reporting_errors(spec: Spec, observer, options: JobOptions) -> JobResult:
    """`run_job` for batch builds: a failure becomes a FAILED result instead of an exception."""
    started = time.perf_counter()
    try:
        return run_job(spec, observer, options)
    except TrtcError as error:
        interrupts.check()  # a failure that follows a signal (a terminated onnxruntime run) is the interrupt
        return failed_result(spec, error, time.perf_counter() - started)


def failed_result(spec: Spec, error: TrtcError, seconds: float = 0.0) -> JobResult:
    return JobResult(
        spec.name,
        str(spec.source),
        FAILED,
        error.exit_code,
        "build failed",
        seconds,
        error=error.message,
        details=list(error.details),
    )


def interrupted_result(
    spec: Spec, stop: interrupts.Interrupted, written: list[Path] | None, seconds: float = 0.0
) -> JobResult:
    """`written`: the files it wrote before the signal; None when it never started."""
    return JobResult(
        spec.name,
        str(spec.source),
        INTERRUPTED,
        stop.exit_code,
        "interrupted" if written is not None else "not started",
        seconds,
        written=[str(p) for p in written or []],
        error=interruption(stop, written),
    )


def interruption(stop: interrupts.Interrupted, written: list[Path] | None) -> str:
    if written is None:
        return f"interrupted by {stop.signal_name} before it started: nothing was written"
    if not written:
        return f"interrupted by {stop.signal_name}: nothing was written"
    return f"interrupted by {stop.signal_name} after writing {', '.join(str(p) for p in written)}"


def _targets(spec: Spec) -> list[Path]:
    return spec.output.all_files()

"""Several specs in one `trtc build`: output collisions refused before anything runs, then the
builds in parallel processes (TensorRT's builder holds the GIL for long stretches, and a crash in
one build must not take the others down)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

from trtc.build_job import FAILED, JobOptions, JobResult, run_job_reporting_errors
from trtc.errors import UsageError
from trtc.incremental.clashes import build_inputs, build_outputs, refuse_clashes
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
                raise UsageError(f"{other.source} and {spec.source} both write {path}; give one of them another output: path")
            owners[path] = spec
    for spec in specs:  # one spec's output must not be what another reads
        inputs = [(f"{other.source}'s {name}", path) for other in specs if other is not spec for name, path in build_inputs(other)]
        refuse_clashes([(f"{spec.source}: {name}", path) for name, path in build_outputs(spec)], inputs)


def build_many(specs: list[Spec], options: JobOptions, jobs: int, observer_for: Callable[[Spec], object]) -> list[JobResult]:
    """Results in the order of `specs`. `observer_for` must be picklable (it runs in the workers)."""
    refuse_collisions(specs)
    if jobs <= 1 or len(specs) == 1:
        return [run_job_reporting_errors(spec, observer_for(spec), options) for spec in specs]
    # spawn, not fork: TensorRT and onnxruntime keep threads that a forked child would inherit broken.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(specs)), mp_context=context) as pool:
        futures = [pool.submit(_job, spec, options, observer_for) for spec in specs]
        return [_result(future, spec) for future, spec in zip(futures, specs)]


def _job(spec: Spec, options: JobOptions, observer_for) -> JobResult:
    return run_job_reporting_errors(spec, observer_for(spec), options)


def _result(future, spec: Spec) -> JobResult:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a worker that died (e.g. killed by the OOM killer)
        return JobResult(spec.name, str(spec.source), FAILED, 1, "build process died", 0.0,
                         error=f"the build process for {spec.source} died: {exc}")

"""Verify the graph passes on the user's own model: the original and the rewritten graph run in
onnxruntime on the same random inputs, and every graph output must agree: same shape, and a
relative L2 error under a tolerance that depends on the dtype and on the model's own numerical
noise (how much onnxruntime's optimizations already move the original's outputs: a model whose
outputs amplify rounding cannot be held to 1e-5). The noise costs a third onnxruntime session, so
it is measured only when a rewrite differs by more than the dtype's base tolerance. On a mismatch
the passes are replayed one at a time to find the pass, then the change, that broke it; that
change is dropped and the passes run again without it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from trtc.errors import BuildError
from trtc.graph.file_weights import WeightsInFile
from trtc.graph.reference import Reference, ReferenceUnavailable
from trtc.graph.weights import SplitModel
from trtc.passes import Change, PassContext, run_passes

BASE_TOLERANCE = {"f": 1e-4, "h": 1e-2}  # float32/64, float16/bfloat16 (by numpy kind and size)
NOISE_FACTOR = 10.0
BESIDE_THREADS = 1  # onnxruntime's threads per run: verification runs beside TensorRT's build
MAX_LOCATE_RUNS = 32


@dataclass
class Verification:
    status: str  # "verified", "not verified", "skipped", "repaired"
    shapes: list[dict] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0
    setup_seconds: float = 0.0  # serializing the rewritten graph and starting its session
    run_seconds: float = 0.0  # its inference on all the feeds

    def section(self) -> dict:
        return {
            "status": self.status,
            "reason": self.reason,
            "checked_shapes": self.shapes,
            "dropped_changes": self.dropped,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Original:
    """The user's model for the verifier: what onnxruntime runs (a file or a split model, no copy
    in a protobuf), and how to get it as a protobuf with its weights, which only finding a
    change to drop needs (rare: it is read again)."""

    source: Path | SplitModel | WeightsInFile | onnx.ModelProto
    load: Callable[[], onnx.ModelProto]


class _Checker:
    """Holds the original's outputs per feed set (the caller ran it) and compares candidates
    against them. One onnxruntime session at a time: a candidate's session is freed before the
    noise estimate starts its own, so memory holds one copy of the weights beside TensorRT's."""

    def __init__(self, original: Original, feeds: list[dict[str, np.ndarray]], expected: list[dict]):
        self.original, self.feeds, self.expected = original, feeds, expected
        self._noise: float | None = None
        self.setup_seconds = self.run_seconds = 0.0  # of the last candidate

    def noise(self) -> float:
        if self._noise is None:
            try:
                optimized = Reference(self.original.source, optimize="basic", threads=BESIDE_THREADS)
                self._noise = max(_error(e, optimized.run(f)) for e, f in zip(self.expected, self.feeds))
            except ReferenceUnavailable:
                self._noise = 0.0
        return self._noise

    def mismatch(self, candidate: onnx.ModelProto | SplitModel) -> str | None:
        started = time.perf_counter()
        try:
            runner = Reference(
                candidate, optimize=False, threads=BESIDE_THREADS
            )  # as the original ran: only the passes differ
            ready = time.perf_counter()
            actual = [runner.run(f) for f in self.feeds]
        except ReferenceUnavailable as error:
            return f"the rewritten graph does not run: {error.message}"
        finally:
            runner = None  # its session (and its copy of the weights) goes before the noise estimate's
        self.setup_seconds, self.run_seconds = ready - started, time.perf_counter() - ready
        for expected, got in zip(self.expected, actual):
            for name, value in expected.items():
                other = got.get(name)
                if other is None or other.shape != value.shape:
                    return f"output '{name}' has shape {None if other is None else list(other.shape)}, expected {list(value.shape)}"
                if value.dtype.kind in "iub":
                    if not np.array_equal(value, other):
                        return f"output '{name}' differs"
                    continue
                error = _error({name: value}, {name: other})
                tolerance = BASE_TOLERANCE["h" if value.dtype.itemsize <= 2 else "f"]
                if error > tolerance:
                    tolerance = max(tolerance, NOISE_FACTOR * self.noise())
                if error > tolerance:
                    return f"output '{name}' differs: relative L2 error {error:.3g} > {tolerance:.3g}"
        return None


def verify_passes(
    original: Original,
    rewritten: onnx.ModelProto | SplitModel,
    passes: list,
    changes: list[Change],
    feeds: list[dict[str, np.ndarray]],
    labels: list[str],
    strict: bool,
    expected: list[dict],
) -> tuple[onnx.ModelProto | None, Verification, list | None]:
    """Returns the repaired model (None when the rewritten one stands), the verification record,
    and the pass runs of the repaired model. `feeds` are input sets (e.g. each profile's min
    shape), `labels` name them, `expected` holds the original's unoptimized outputs on them."""
    started = time.perf_counter()
    if not changes:
        return None, Verification("verified", labels, reason="no pass changed the graph"), None
    checker = _Checker(original, feeds, expected)
    problem = checker.mismatch(rewritten)
    if problem is None:
        return (
            None,
            Verification(
                "verified",
                labels,
                seconds=time.perf_counter() - started,
                setup_seconds=checker.setup_seconds,
                run_seconds=checker.run_seconds,
            ),
            None,
        )
    if strict:
        raise BuildError(
            f"graph passes changed the model's outputs ({problem}); fix or switch off the pass "
            "(fusion: {disable: [...]}) or set fusion.verify: on to drop the change automatically"
        )
    model = original.load()
    excluded: set[str] = set()
    dropped = []
    for _ in range(8):  # several independent bad changes are dropped one after another
        culprit = _locate(model, passes, checker, frozenset(excluded))
        if culprit is None:
            break
        excluded.update(culprit.nodes_before)
        dropped.append({"pass": culprit.pass_name, "nodes": list(culprit.nodes_before), "problem": problem})
        repaired, runs = _apply(model, passes, frozenset(excluded))
        problem = checker.mismatch(repaired)
        if problem is None:
            return repaired, Verification("repaired", labels, dropped, seconds=time.perf_counter() - started), runs
    raise BuildError(
        f"graph passes changed the model's outputs ({problem}) and trtc could not isolate the change; "
        "set fusion: {passes: none} and report the model"
    )


def _locate(original, passes, checker: _Checker, excluded: frozenset[str]) -> Change | None:
    """The first pass whose addition breaks the outputs, then its smallest breaking change."""
    for count in range(1, len(passes) + 1):
        model, runs = _apply(original, passes[:count], excluded)
        if checker.mismatch(model) is None:
            continue
        suspects = [c for run in runs if run.name == passes[count - 1].name for c in run.changes]
        runs_left = MAX_LOCATE_RUNS
        while len(suspects) > 1 and runs_left:
            half = suspects[: len(suspects) // 2]
            keep_out = excluded | {n for c in suspects[len(suspects) // 2 :] for n in c.nodes_before}
            trial, _ = _apply(original, passes[:count], frozenset(keep_out))
            suspects = half if checker.mismatch(trial) else suspects[len(suspects) // 2 :]
            runs_left -= 1
        return suspects[0] if suspects else None
    return None


def _apply(original: onnx.ModelProto, passes, excluded: frozenset[str]):
    model = onnx.ModelProto()
    model.CopyFrom(original)
    runs = run_passes(model, [type(p)() for p in passes], PassContext(exclude=excluded))
    return model, runs


def _error(expected: dict, actual: dict) -> float:
    worst = 0.0
    for name, value in expected.items():
        if value.dtype.kind not in "fc":
            continue
        reference, other = value.astype(np.float64), actual[name].astype(np.float64)
        norm = np.linalg.norm(reference)
        worst = max(
            worst, float(np.linalg.norm(reference - other) / norm) if norm > 0 else float(np.linalg.norm(other))
        )
    return worst

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

import numpy as np
import onnx

from trtc.errors import BuildError
from trtc.graph.reference import Reference, ReferenceUnavailable
from trtc.passes import Change, PassContext, run_passes

BASE_TOLERANCE = {"f": 1e-4, "h": 1e-2}  # float32/64, float16/bfloat16 (by numpy kind and size)
NOISE_FACTOR = 10.0
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


class _Checker:
    """Holds the original's outputs per feed set (run once, as written, or given by the caller,
    who already ran it) and compares candidates against them."""

    def __init__(
        self, original: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], expected: list[dict | None] | None = None
    ):
        self.original, self.feeds = original, feeds
        self.expected, plain = [], None
        for given, feed in zip(expected or [None] * len(feeds), feeds):
            if given is None:
                plain = plain or Reference(original, optimize=False)
                given = plain.run(feed)
            self.expected.append(given)
        self._noise: float | None = None
        self.setup_seconds = self.run_seconds = 0.0  # of the last candidate

    def noise(self) -> float:
        if self._noise is None:
            try:
                optimized = Reference(self.original, optimize="basic")  # the level candidates run at
                self._noise = max(_error(e, optimized.run(f)) for e, f in zip(self.expected, self.feeds))
            except ReferenceUnavailable:
                self._noise = 0.0
        return self._noise

    def mismatch(self, candidate: onnx.ModelProto) -> str | None:
        started = time.perf_counter()
        try:
            runner = Reference(candidate, optimize="basic")
            ready = time.perf_counter()
            actual = [runner.run(f) for f in self.feeds]
        except ReferenceUnavailable as error:
            return f"the rewritten graph does not run: {error.message}"
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
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    passes: list,
    changes: list[Change],
    feeds: list[dict[str, np.ndarray]],
    labels: list[str],
    strict: bool,
    expected: list[dict | None] | None = None,
) -> tuple[onnx.ModelProto, Verification, list]:
    """Returns the model to build (repaired when needed), the verification record, and the pass
    runs of that model. `feeds` are input sets (e.g. each profile's min shape), `labels` name them;
    `expected` may hold the original's unoptimized outputs for some of them, already computed."""
    started = time.perf_counter()
    if not changes:
        return rewritten, Verification("verified", labels, reason="no pass changed the graph"), None
    try:
        checker = _Checker(original, feeds, expected)
    except ReferenceUnavailable as error:
        return (
            rewritten,
            Verification("not verified", labels, reason=error.message, seconds=time.perf_counter() - started),
            None,
        )
    problem = checker.mismatch(rewritten)
    if problem is None:
        return (
            rewritten,
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
    excluded: set[str] = set()
    dropped = []
    for _ in range(8):  # several independent bad changes are dropped one after another
        culprit = _locate(original, passes, checker, frozenset(excluded))
        if culprit is None:
            break
        excluded.update(culprit.nodes_before)
        dropped.append({"pass": culprit.pass_name, "nodes": list(culprit.nodes_before), "problem": problem})
        repaired, runs = _apply(original, passes, frozenset(excluded))
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

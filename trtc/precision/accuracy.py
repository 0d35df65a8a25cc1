"""How much accuracy a precision change cost: the FP32 model and the converted one run in
onnxruntime on the same held-out samples; per output the max abs error, relative L2 error,
cosine similarity pooled over all samples and per sample (mean and worst: one broken sample must
not hide in the pool) and, for outputs shaped like class scores ([batch, classes], classes >= 2),
top-1 agreement. Values the converted model makes Inf/NaN where FP32 is finite (FP16 overflow)
are counted apart, the metrics cover the rest, and any such value fails every gate: a NaN metric
must never pass a comparison. Gates from the spec's `accuracy` block turn a shortfall into exit
code 3. No figure comes from fewer than MIN_ACCURACY_SAMPLES samples: no samples make no results,
and a gate with too few is a spec error (exit 2), never a pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import onnx

from trtc.errors import AccuracyGateError, SpecError
from trtc.graph.reference import Reference
from trtc.graph.weights import SplitModel
from trtc.precision.data import batch_samples
from trtc.spec.preflight import MIN_ACCURACY_SAMPLES

CLEARLY_OFF_COSINE, CLEARLY_OFF_SAMPLE_COSINE = 0.99, 0.9  # below these a build warns without any gate
# FP32 runs on the accuracy samples (inputs and outputs) kept for the next comparison up to this
# size; past it each comparison runs FP32 again, on the same session.
KEPT_RUNS_BYTES = 256 << 20


@dataclass
class OutputAccuracy:
    name: str
    samples: int
    max_abs_error: float
    rel_l2_error: float
    cosine: float  # pooled over all samples
    top1_agreement: float | None
    nonfinite: int = 0  # values Inf/NaN in the converted output where FP32 is finite
    sample_cosine_mean: float | None = None
    sample_cosine_worst: float | None = None


def _cosine(dot, ref2, out2, diff2):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((ref2 > 0) & (out2 > 0), dot / np.sqrt(ref2 * out2), np.where(diff2 == 0, 1.0, 0.0))


class _Accumulator:
    """Sums that make the metrics over all batches without keeping outputs."""

    def __init__(self, name: str):
        self.name, self.samples, self.max_abs = name, 0, 0.0
        self.diff2 = self.ref2 = self.dot = self.out2 = 0.0
        self.top1_same = self.top1_total = self.nonfinite = 0
        self.sample_cosines: list[float] = []

    def add(self, reference: np.ndarray, converted: np.ndarray, samples: int) -> None:
        # Per sample when the output's first axis is the batch; else the run counts as one sample.
        rows = samples if reference.ndim and reference.shape[0] == samples and samples else 1
        ref, out = reference.astype(np.float64).reshape(rows, -1), converted.astype(np.float64).reshape(rows, -1)
        self.samples += samples
        self.nonfinite += int(np.sum(np.isfinite(ref) & ~np.isfinite(out)))
        both = np.isfinite(ref) & np.isfinite(out)
        ref, out = np.where(both, ref, 0.0), np.where(both, out, 0.0)
        diff2, ref2, out2, dot = ((ref - out) ** 2).sum(1), (ref**2).sum(1), (out**2).sum(1), (ref * out).sum(1)
        self.max_abs = max(self.max_abs, float(np.max(np.abs(ref - out))) if ref.size else 0.0)
        self.diff2, self.ref2, self.out2, self.dot = (
            self.diff2 + diff2.sum(),
            self.ref2 + ref2.sum(),
            self.out2 + out2.sum(),
            self.dot + dot.sum(),
        )
        self.sample_cosines += [float(c) for c in _cosine(dot, ref2, out2, diff2)]
        if reference.ndim == 2 and reference.shape[1] >= 2:
            self.top1_same += int(np.sum(reference.argmax(1) == converted.argmax(1)))
            self.top1_total += reference.shape[0]

    def result(self) -> OutputAccuracy:
        if not self.samples:
            raise ValueError(f"output '{self.name}': no samples measured, so no figure")
        rel = np.sqrt(self.diff2 / self.ref2) if self.ref2 > 0 else float(np.sqrt(self.diff2))
        cosine = float(_cosine(self.dot, self.ref2, self.out2, self.diff2))
        top1 = self.top1_same / self.top1_total if self.top1_total else None
        return OutputAccuracy(
            self.name,
            self.samples,
            self.max_abs,
            float(rel),
            cosine,
            top1,
            self.nonfinite,
            float(np.mean(self.sample_cosines)),
            float(np.min(self.sample_cosines)),
        )


def measure_accuracy(
    reference: onnx.ModelProto | bytes, converted: onnx.ModelProto | bytes, batches: Iterable[dict[str, np.ndarray]]
) -> list[OutputAccuracy]:
    fp32 = Reference(reference)
    return compare_outputs(((feeds, fp32.run(feeds)) for feeds in batches), converted, fp32.outputs)


class ReferenceRuns:
    """The FP32 model's outputs on the accuracy samples, for every converted graph measured on
    them: auto_fallback measures up to 2 * AUTO_FALLBACK_STEPS graphs, and each FP32 pass over 64
    samples of a ResNet-50-shaped model took 15 s here. Run once and kept while they fit in
    KEPT_RUNS_BYTES; else run again for each graph, on the same session."""

    def __init__(self, model: onnx.ModelProto | bytes, batches: Callable[[], Iterable[dict[str, np.ndarray]]]):
        self._model: onnx.ModelProto | bytes | None = model
        self._batches = batches
        self._fp32: Reference | None = None
        self._kept: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] | None = None
        self.outputs: list[str] = []

    def runs(self) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """(feeds, FP32 outputs) per batch, the same on every call."""
        if self._kept is not None:
            yield from self._kept
            return
        self._start()
        kept: list | None = []
        size = 0
        for feeds in self._batches():
            outputs = self._fp32.run(feeds)
            if kept is not None:
                size += sum(value.nbytes for value in (*feeds.values(), *outputs.values()))
                kept = kept + [(feeds, outputs)] if size <= KEPT_RUNS_BYTES else None
            yield feeds, outputs
        if kept is not None:  # every run is in memory: the session (a copy of the weights) can go
            self._kept, self._fp32 = kept, None

    def measure(self, converted: onnx.ModelProto | bytes) -> list[OutputAccuracy]:
        """`converted` against the FP32 model on the accuracy samples."""
        if self._kept is None:
            self._start()  # the session names the outputs
        return compare_outputs(self.runs(), converted, self.outputs)

    def _start(self) -> None:
        if self._fp32 is None:
            self._fp32 = Reference(self._model)
            self.outputs, self._model = self._fp32.outputs, None


def compare_outputs(
    runs: Iterable[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
    converted: onnx.ModelProto | bytes | SplitModel,
    outputs: list[str],
) -> list[OutputAccuracy]:
    """`converted` against FP32 outputs already computed: (feeds, FP32 outputs) per batch."""
    reduced = Reference(converted)
    sums = {name: _Accumulator(name) for name in outputs}
    measured = 0
    for feeds, expected in runs:
        actual = reduced.run(_cast_like(reduced, feeds))
        samples = batch_samples(feeds)
        measured += samples
        for name, accumulator in sums.items():
            accumulator.add(expected[name], actual[name], samples)
    return [accumulator.result() for accumulator in sums.values()] if measured else []


def below(figure: float, gate: float, digits: int = 4) -> str:
    """`figure` with enough digits to read as under `gate`: a cosine of 0.9999999 against a gate
    of 0.99999999 is not "1.000000"."""
    while digits < 15 and not float(f"{figure:.{digits}f}") < gate:
        digits += 1
    return f"{figure:.{digits}f}"


def gate_failures(results: list[OutputAccuracy], gates: dict) -> list[str]:
    """One line per output that misses a gate set in the spec's `accuracy` block."""
    failures = []
    for result in results:
        if gates and result.nonfinite:
            failures.append(
                f"output '{result.name}': {result.nonfinite} value(s) are Inf/NaN where FP32 is finite (overflow in reduced precision)"
            )
            continue
        if "min_cosine" in gates and not result.cosine >= gates["min_cosine"]:
            failures.append(
                f"output '{result.name}': cosine {below(result.cosine, gates['min_cosine'])} < accuracy.min_cosine "
                f"{gates['min_cosine']}"
            )
        if "max_rel_l2" in gates and not result.rel_l2_error <= gates["max_rel_l2"]:
            failures.append(
                f"output '{result.name}': relative L2 error {result.rel_l2_error:.3g} > accuracy.max_rel_l2 {gates['max_rel_l2']}"
            )
        if (
            "min_top1_agreement" in gates
            and result.top1_agreement is not None
            and not result.top1_agreement >= gates["min_top1_agreement"]
        ):
            failures.append(
                f"output '{result.name}': top-1 agreement {below(result.top1_agreement, gates['min_top1_agreement'])} < "
                f"accuracy.min_top1_agreement {gates['min_top1_agreement']}"
            )
    return failures


def enforce(results: list[OutputAccuracy], gates: dict, mode: str) -> None:
    measured = min((r.samples for r in results), default=0)
    if gates and measured < MIN_ACCURACY_SAMPLES:  # callers refuse this earlier, naming the data; never a pass
        raise SpecError(
            f"accuracy.{next(iter(gates))}: a gate needs at least {MIN_ACCURACY_SAMPLES} samples to measure; "
            f"{measured} were measured: give more samples"
        )
    if "min_top1_agreement" in gates and results and all(r.top1_agreement is None for r in results):
        # A gate that cannot be measured must not pass silently.
        raise SpecError(
            f"accuracy.min_top1_agreement: no output ({', '.join(r.name for r in results)}) is a [batch, classes] "
            "score matrix, so top-1 agreement cannot be measured; remove the gate or use accuracy.min_cosine"
        )
    failures = gate_failures(results, gates)
    if failures:
        raise AccuracyGateError(
            f"accuracy gate failed for {mode}: {failures[0]}"
            + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
            + "; keep sensitive layers in higher precision (precision.keep_fp32) or relax the gate",
            failures,
        )


def clearly_off(outputs: list[dict]) -> list[str]:
    """Why a measured reduced-precision model is clearly off FP32, one phrase per output; the
    build warns about these without any gate set."""
    problems = []
    for o in outputs:
        worst = o["sample_cosine_worst"]
        if o["nonfinite"]:
            problems.append(f"output '{o['name']}': {o['nonfinite']} value(s) Inf/NaN where FP32 is finite")
        elif o["cosine"] < CLEARLY_OFF_COSINE or worst < CLEARLY_OFF_SAMPLE_COSINE:
            problems.append(f"output '{o['name']}': cosine {o['cosine']:.4f}, worst sample {worst:.4f}")
    return problems


def as_dicts(results: list[OutputAccuracy]) -> list[dict]:
    return [asdict(result) for result in results]


def _cast_like(reference: Reference, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inputs the converted model declares in reduced precision (keep_io_types: false) get cast."""
    kinds = {i.name: i.type for i in reference.session.get_inputs()}
    cast = {"tensor(float16)": np.float16, "tensor(float)": np.float32}
    return {
        name: value.astype(cast[kinds[name]]) if kinds.get(name) in cast else value for name, value in feeds.items()
    }

"""onnxruntime on the CPU as the numerical reference. A model it cannot load or run raises
`ReferenceUnavailable` with the reason; callers decide whether that is fatal."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx

from trtc import interrupts
from trtc.errors import TrtcError
from trtc.graph.file_weights import WeightsInFile
from trtc.graph.weights import LOCATION, SplitModel


class ReferenceUnavailable(TrtcError):
    """onnxruntime cannot run this model (an op it lacks, a type it does not support, ...)."""


class Reference:
    """`optimize`: True (all of onnxruntime's graph optimizations: fastest runs of large batches),
    "basic" (constant folding and fusions only: the session starts about 3x faster on a ResNet-50,
    batch-1 runs as fast), False (none: the model as written). `threads`: onnxruntime's threads
    for one run (None: one per core); checks that run beside TensorRT's build take one, leaving
    the other core to TensorRT. `free_early`: run nodes in onnxruntime's priority order, which
    frees a tensor once its readers ran (its default order can leave a side branch's reader,
    such as a reduction, to the end and keep every tensor alive until then)."""

    def __init__(
        self,
        model: onnx.ModelProto | bytes | Path | SplitModel | WeightsInFile,
        outputs: list[str] | None = None,
        optimize: bool | str = True,
        threads: int | None = None,
        free_early: bool = False,
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Fatal only: trtc reports every load or run failure itself, in one line; onnxruntime would
        # also print its own coloured copy of the error to stderr.
        options.log_severity_level = 4
        # Idle threads wait instead of spinning: trtc makes a few long runs, and on a shared machine
        # spinning doubled a ResNet-50 run's CPU time (0.14 -> 0.30 s at batch 1, one thread).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = threads
        if free_early:
            options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        if optimize == "basic":
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        elif not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            if isinstance(model, WeightsInFile):
                model = model.split()
            if isinstance(model, SplitModel):
                self.session = self._split_session(ort, model, options, optimize)
            else:
                # A file path: onnxruntime reads the file itself, and Python holds no copy of the model.
                data = (
                    str(model)
                    if isinstance(model, Path)
                    else model
                    if isinstance(model, bytes)
                    else model.SerializeToString()
                )
                self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ReferenceUnavailable(f"onnxruntime cannot load the model: {_one_line(exc)}") from None
        self.outputs = outputs or [o.name for o in self.session.get_outputs()]
        self._run_options = ort.RunOptions

    def _split_session(self, ort, model: SplitModel, options, optimize: bool | str):
        """Unoptimized, onnxruntime runs on the split model's weights where they are, without a
        copy (`add_initializer`; they must outlive the session, so this object keeps them). It
        accepts that only for external initializers of a model read from a file beside an
        existing data file: an empty one stands in (measured on a 100 MB model: +30 MB, against
        +118 MB when it copies them). Its graph optimizer reads initializers from the file
        instead: optimized, it gets a copy."""
        self._weights = [ort.OrtValue.ortvalue_from_numpy(model.array(name)) for name in model.weights]
        if optimize:
            options.add_external_initializers(list(model.weights), self._weights)
            return ort.InferenceSession(model.structure, options, providers=["CPUExecutionProvider"])
        for name, value in zip(model.weights, self._weights):
            options.add_initializer(name, value)
        # the session may still be loading (seconds, in native code) when the process ends
        with interrupts.temporary_folder("trtc-ort-", {LOCATION: b"", "model.onnx": model.structure}) as folder:
            return ort.InferenceSession(str(Path(folder) / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # A run holds off Python's signal handler for as long as it takes: a signal terminates it.
        options = self._run_options()
        try:
            with interrupts.stoppable(lambda: setattr(options, "terminate", True)):
                values = self.session.run(self.outputs, feeds, options)
        except Exception as exc:  # noqa: BLE001
            interrupts.check()  # terminated by a signal: the model is fine
            raise ReferenceUnavailable(f"onnxruntime cannot run the model: {_one_line(exc)}") from None
        return dict(zip(self.outputs, values))


class OnDemandReference:
    """One `Reference` shared by the steps that need the same model's outputs (the output-shape
    check and the verification's expected outputs): its session starts at the first run and
    ends at `close()`, so its copy of the weights is gone before the next session starts. A
    model that cannot load fails every run with the same reason, without trying again."""

    def __init__(
        self,
        model: onnx.ModelProto | bytes | Path | SplitModel | WeightsInFile,
        optimize: bool | str = True,
        threads: int | None = None,
    ):
        self._model: onnx.ModelProto | bytes | Path | SplitModel | WeightsInFile | None = model
        self._optimize, self._threads = optimize, threads
        self._reference: Reference | None = None
        self._failure: ReferenceUnavailable | None = None
        self.last_run_seconds = 0.0

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._failure is not None:
            raise self._failure
        try:
            if self._reference is None:
                if self._model is None:
                    raise RuntimeError("OnDemandReference used after close()")
                self._reference = Reference(self._model, optimize=self._optimize, threads=self._threads)
            started = time.perf_counter()
            outputs = self._reference.run(feeds)
        except ReferenceUnavailable as error:
            self._failure = error
            raise
        self.last_run_seconds = time.perf_counter() - started
        return outputs

    def close(self) -> None:
        self._reference = self._model = None


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` whose graph outputs are `names` (any intermediate tensors)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.output[:]
    copy.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in names)
    return copy


def _one_line(exc: Exception) -> str:
    """onnxruntime's message on one line (it breaks lines mid-sentence: 'for the following
    indices\n index: 0 Got: 16 Expected: 1')."""
    text = " ".join(str(exc).split())
    return text[:400] if text else type(exc).__name__

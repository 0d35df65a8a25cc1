"""onnxruntime on the CPU as the numerical reference. A model it cannot load or run raises
`ReferenceUnavailable` with the reason; callers decide whether that is fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from trtc import interrupts
from trtc.errors import TrtcError


class ReferenceUnavailable(TrtcError):
    """onnxruntime cannot run this model (an op it lacks, a type it does not support, ...)."""


class Reference:
    """`optimize`: True (all of onnxruntime's graph optimizations: fastest runs of large batches),
    "basic" (constant folding and fusions only: the session starts about 3x faster on a ResNet-50,
    batch-1 runs as fast), False (none: the model as written)."""

    def __init__(
        self, model: onnx.ModelProto | bytes | Path, outputs: list[str] | None = None, optimize: bool | str = True
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Fatal only: trtc reports every load or run failure itself, in one line; onnxruntime would
        # also print its own coloured copy of the error to stderr.
        options.log_severity_level = 4
        if optimize == "basic":
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        elif not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        # A file path: onnxruntime reads the file itself, and Python holds no copy of the model.
        data = (
            str(model) if isinstance(model, Path) else model if isinstance(model, bytes) else model.SerializeToString()
        )
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ReferenceUnavailable(f"onnxruntime cannot load the model: {_one_line(exc)}") from None
        self.outputs = outputs or [o.name for o in self.session.get_outputs()]
        self._run_options = ort.RunOptions

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

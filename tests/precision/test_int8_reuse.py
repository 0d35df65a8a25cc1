"""What the INT8 precision step computes once and reuses gives the numbers it gave when each
step computed it again: the same figures, ranges, shifts and graph bytes."""

import numpy as np
import pytest

from tests import models
from trtc.precision import accuracy
from trtc.precision.accuracy import ReferenceRuns, measure_accuracy
from trtc.precision.calibrate import collect_ranges
from trtc.precision.qdq import insert_qdq, plan_quantization


def samples(seed: int, count: int = 4) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((count, 8, 16, 16)).astype(np.float32)}


def int8_graphs():
    """A small conv chain in INT8, then with each layer back in FP32: the graphs auto_fallback measures."""
    model = models.conv_chain(3)
    plan = plan_quantization(model)
    ranges = collect_ranges(model, plan.activations, [samples(seed) for seed in range(3)], "minmax")[0]
    graphs = [insert_qdq(model, plan, ranges, "int8")]
    for layer in plan.layers:
        graphs.append(insert_qdq(model, plan_quantization(model, exclude=frozenset([layer])), ranges, "int8"))
    return model, graphs


@pytest.mark.parametrize("kept_bytes", [accuracy.KEPT_RUNS_BYTES, 0])
def test_fp32_runs_made_once_give_the_figures_of_a_fresh_fp32_run(monkeypatch, kept_bytes):
    monkeypatch.setattr(accuracy, "KEPT_RUNS_BYTES", kept_bytes)  # 0: nothing kept, FP32 runs again each time
    model, graphs = int8_graphs()
    read = []

    def batches():
        read.append(1)
        return [samples(100 + seed) for seed in range(3)]

    runs = ReferenceRuns(model, batches)
    for converted in graphs:
        assert runs.measure(converted) == measure_accuracy(model, converted, [samples(100 + s) for s in range(3)])
    assert len(read) == (1 if kept_bytes else len(graphs))

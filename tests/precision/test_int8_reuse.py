"""What the INT8 precision step computes once and reuses gives the numbers it gave when each
step computed it again: the same figures, ranges, shifts and graph bytes."""

import numpy as np
import pytest
from onnx import helper, version_converter

from tests import models
from tests.passes.helpers import model as graph_of
from tests.passes.helpers import weights
from trtc.graph.io import name_unnamed_nodes
from trtc.graph.reference import Reference
from trtc.passes import PassContext, run_passes, select_passes
from trtc.precision import accuracy
from trtc.precision.accuracy import ReferenceRuns, compare_outputs, measure_accuracy
from trtc.precision.calibrate import collect_ranges
from trtc.precision.fallback import rank_layers
from trtc.precision.opset import with_opset
from trtc.precision.qdq import QuantPlan, insert_qdq, plan_quantization
from trtc.spec.model import FusionSpec, ShapeRange


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


def test_layers_ranked_on_graphs_sharing_the_weights_harm_as_on_whole_copies():
    """Each layer quantized alone: once a copy of the whole model, now the FP32 weights shared
    (mobilenet_like's larger weights are handed to onnxruntime apart, the small ones stay inline)."""
    model = models.mobilenet_like()
    run_passes(model, select_passes(FusionSpec()), PassContext())
    plan = plan_quantization(model)
    batches = [
        {"x": np.random.default_rng(seed).standard_normal((4, 3, 32, 32)).astype(np.float32)} for seed in range(2)
    ]
    ranges = collect_ranges(model, plan.activations, batches, "entropy")[0]
    profile = {"x": ShapeRange((1, 3, 32, 32), (4, 3, 32, 32), (4, 3, 32, 32))}
    ranking = rank_layers(model, plan.layers, ranges, "int8", batches, {}, profile)
    fp32 = Reference(model)
    runs = [(feeds, fp32.run(feeds)) for feeds in batches]
    for entry in ranking.entries:
        node = next(node for node in model.graph.node if node.name == entry["layer"])
        alone = insert_qdq(
            model, QuantPlan(layers=[node.name], activations=[node.input[0]], residuals=[]), ranges, "int8"
        )
        assert entry["rel_l2_error"] == max(r.rel_l2_error for r in compare_outputs(runs, alone, fp32.outputs))
    assert len(ranking.entries) == len(plan.layers)


@pytest.mark.parametrize("opset", [13, 19])
def test_opset_raised_with_the_weights_set_aside_is_the_whole_model_converted(opset):
    """Adapters that rewrite nodes (axes become inputs), large weights (set aside) and small ones."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "b"], ["a"], name="add"),
        helper.make_node("ReduceMean", ["a"], ["m"], name="mean", axes=[2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["m"], ["y"], name="", axes=[2]),
    ]
    initializers = [weights("w", (32, 16, 3, 3)), weights("b", (1, 32, 1, 1))]
    old = graph_of(nodes, {"x": ["N", 16, 8, 8]}, ["y"], initializers, opset=12)
    whole = version_converter.convert_version(old, opset)
    name_unnamed_nodes(whole.graph)
    raised = with_opset(old, opset)
    assert raised.SerializeToString(deterministic=True) == whole.SerializeToString(deterministic=True)
    assert raised.graph.initializer[0].raw_data == old.graph.initializer[0].raw_data

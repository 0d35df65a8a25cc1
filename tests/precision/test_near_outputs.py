"""The inputs of the last quantized layers before an output keep their whole range under a
clipping method: their rare large values are the result (a detection's score, a logit)."""

import numpy as np
from onnx import helper

from tests.passes.helpers import model, weights
from trtc.precision.calibrate import collect_ranges
from trtc.precision.qdq import near_outputs, plan_quantization


def chain_with_a_side_output():
    """x -> a -> relu -> b -> relu -> c -> y, and b's output is also a model output."""
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="a"),
        helper.make_node("Relu", ["a"], ["ra"], name="relu_a"),
        helper.make_node("Conv", ["ra", "wb"], ["b"], name="b"),
        helper.make_node("Relu", ["b"], ["rb"], name="relu_b"),
        helper.make_node("Conv", ["rb", "wc"], ["y"], name="c"),
    ]
    return model(
        nodes,
        {"x": ["N", 4, 8, 8]},
        ["y", "b"],
        [weights("wa", (8, 4, 1, 1)), weights("wb", (8, 8, 1, 1), 1), weights("wc", (8, 8, 1, 1), 2)],
    )


def test_layers_within_the_hops_of_an_output_are_found_on_every_path():
    graph = chain_with_a_side_output()
    layers = plan_quantization(graph).layers
    assert near_outputs(graph, layers, -1) == []
    assert near_outputs(graph, layers, 0) == ["ra", "rb"]  # b feeds an output directly too
    assert near_outputs(graph, layers, 1) == ["x", "ra", "rb"]


def test_unclipped_tensors_keep_their_largest_value_under_a_clipping_method():
    graph = chain_with_a_side_output()
    rng = np.random.default_rng(0)
    x = rng.laplace(size=(64, 4, 8, 8))
    batches = [{"x": x.astype(np.float32)}]
    clipped = collect_ranges(graph, ["x", "ra"], batches, "mse")[0]
    kept = collect_ranges(graph, ["x", "ra"], batches, "mse", unclipped=["x"])[0]
    largest = collect_ranges(graph, ["x", "ra"], batches, "minmax")[0]
    assert clipped["x"] < 0.95 * largest["x"] and kept["x"] == largest["x"]  # Laplacian: mse clips its tail
    assert kept["ra"] == clipped["ra"]  # the others keep the method's range

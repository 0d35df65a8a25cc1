"""Entropy calibration against a slow, literal reference of TensorRT's KL-divergence algorithm,
and ranges that depend only on the calibration data (not on its batch size or order)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from trtc.precision.calibrate import CALIBRATOR, cache_document, cache_key, collect_ranges, read_cache
from trtc.precision.histogram import RangeCollector


def reference_entropy_amax(values: np.ndarray) -> float:
    """TensorRT's entropy calibration as its pseudocode (GTC 2017, "8-bit inference with
    TensorRT") states it, one candidate at a time. The pseudocode is silent about exact zeros:
    NVIDIA's own PyTorch reimplementation gives the zero bin its neighbour's count, since a
    spike there (half a ReLU output) would otherwise decide every threshold."""
    magnitudes = np.abs(values.astype(np.float64)).ravel()
    top = magnitudes.max()
    bins = np.histogram(magnitudes, bins=2048, range=(0.0, top))[0].astype(np.float64)
    bins[0] = bins[1]
    best, best_i = np.inf, 2048
    for i in range(128, 2049):
        p = bins[:i].copy()
        p[i - 1] += bins[i:].sum()  # the clipped outliers land in the last kept bin
        level_of = np.arange(i) * 128 // i  # bin j falls in level floor(128 j / i)
        totals = np.bincount(level_of, weights=bins[:i], minlength=128)
        members = np.bincount(level_of, weights=bins[:i] > 0, minlength=128)  # non-empty bins per level
        q = np.where(bins[:i] > 0, totals[level_of] / np.maximum(members[level_of], 1), 0.0)  # expanded back
        if q.sum() == 0:
            continue
        p, q = p / p.sum(), q / q.sum()
        if np.any((p > 0) & (q == 0)):
            continue  # infinite divergence
        nonzero = p > 0
        divergence = float(np.sum(p[nonzero] * np.log(p[nonzero] / q[nonzero])))
        if divergence < best:
            best, best_i = divergence, i
    return (best_i + 0.5) * top / 2048


def _distributions():
    rng = np.random.default_rng(0)
    relu_with_outliers = np.maximum(rng.standard_normal(200_000), 0)
    relu_with_outliers[:20] = rng.uniform(8, 30, 20)
    return {
        "gaussian": rng.standard_normal(200_000),
        "laplacian": rng.laplace(size=200_000),
        "relu gaussian with outliers": relu_with_outliers,
        "bimodal": np.concatenate([rng.normal(-3, 0.5, 100_000), rng.normal(5, 1.0, 100_000)]),
        "silu-like": (lambda x: x / (1 + np.exp(-x)))(rng.normal(0, 2, 200_000)),
    }


@pytest.fixture(scope="module")
def references():
    return {
        name: (values.astype(np.float32), reference_entropy_amax(values.astype(np.float32)))
        for name, values in _distributions().items()
    }


@pytest.mark.parametrize("name", list(_distributions()))
def test_entropy_matches_the_reference_algorithm(references, name):
    values, expected = references[name]
    collector = RangeCollector()
    for chunk in np.array_split(values, 7):  # several batches, as calibration streams them
        collector.add(chunk)
    assert collector.amax_for("entropy") == pytest.approx(expected, rel=0.03)


def test_a_relu_output_is_not_clipped_to_a_sixteenth_of_its_range():
    """Half of a ReLU output is exactly 0; that spike must not pull the threshold to bin 128."""
    values = np.maximum(np.random.default_rng(1).standard_normal(100_000), 0).astype(np.float32)
    collector = RangeCollector()
    collector.add(values)
    assert collector.amax_for("entropy") > 0.5 * values.max()


def _ranges_in_batches(values: np.ndarray, batch: int, order: np.ndarray | None = None) -> dict[str, float]:
    if order is not None:
        values = values[order]
    collectors = {
        method: RangeCollector(histogram=method != "minmax") for method in ("minmax", "entropy", "percentile")
    }
    for start in range(0, len(values), batch):
        for collector in collectors.values():
            collector.add(values[start : start + batch])
    return {method: c.amax_for(method) for method, c in collectors.items()}


def test_ranges_do_not_depend_on_batch_size_or_sample_order():
    """Samples whose ranges grow (a quiet sample first, louder ones later) make a histogram that
    widens as it goes; merging must lose nothing, so every split gives the same ranges."""
    rng = np.random.default_rng(2)
    samples = np.stack([rng.laplace(size=(4, 16, 16)) * (1 + 3 * k / 32) for k in range(32)]).astype(np.float32)
    whole = _ranges_in_batches(samples, 32)
    for batch in (1, 4):
        assert _ranges_in_batches(samples, batch) == whole
    assert _ranges_in_batches(samples, 1, rng.permutation(32)) == whole


def _conv_relu_model() -> onnx.ModelProto:
    rng = np.random.default_rng(5)
    weights = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 8, 8])],
        initializer=[weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_calibrated_ranges_do_not_depend_on_the_calibration_batch(method):
    rng = np.random.default_rng(3)
    samples = np.stack([rng.standard_normal((3, 8, 8)) * (1 + k / 8) for k in range(32)]).astype(np.float32)
    model = _conv_relu_model()

    def ranges(batch, order=None):
        data = samples if order is None else samples[order]
        return collect_ranges(model, ["c", "y"], ({"x": data[s : s + batch]} for s in range(0, 32, batch)), method)[0]

    whole = ranges(32)
    for other in (ranges(1), ranges(4), ranges(1, rng.permutation(32))):
        for tensor, value in whole.items():  # onnxruntime's convolution may round differently per batch size
            assert other[tensor] == pytest.approx(value, rel=1e-4)


def test_a_cache_from_another_calibrator_is_stale(tmp_path):
    """The same model, data and method give other ranges once the calibrator changes."""
    model = _conv_relu_model()
    key = cache_key("model", model, "data", {"method": "entropy", "sample_limit": 8, "calibrator": CALIBRATOR}, {})
    older = {k: v for k, v in key.items() if k != "calibrator"}
    path = tmp_path / "calib.json"
    path.write_text(cache_document(older, {"x": 1.0}, 8))
    ranges, _, status, _ = read_cache(path, key, ["x"], {"x"})
    assert ranges is None and status.startswith("stale") and "calibrator" in status
    path.write_text(cache_document(key, {"x": 1.0}, 8))
    assert read_cache(path, key, ["x"], {"x"})[:3] == ({"x": 1.0}, 8, "hit")
    assert (
        read_cache(path, key, ["x"], {"x"}, {"channel_ranges": ["x"]})[2]
        == f"stale: {path} lacks the channel ranges of x"
    )
    path.write_text(cache_document(key, {"x": 1.0}, 8, {"channel_ranges": {"x": [0.5, 1.0]}}))
    assert read_cache(path, key, ["x"], {"x"}, {"channel_ranges": ["x"]}) == (
        {"x": 1.0},
        8,
        "hit",
        {"channel_ranges": {"x": [0.5, 1.0]}},
    )

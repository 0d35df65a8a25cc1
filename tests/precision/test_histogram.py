"""Range statistics against hand-computed cases; memory that does not grow with samples."""

import numpy as np
import pytest

from trtc.precision.histogram import BINS, FINE_BINS, RangeCollector, entropy_amax, percentile_amax


def test_minmax_and_growing_keep_every_count_in_its_exact_bin():
    collector = RangeCollector()
    collector.add(np.array([0.5, -1.0, 0.0], np.float32))
    assert collector.top == 2.0  # the power of two above the largest |x|
    collector.add(np.array([3.0, -4.0, 0.1], np.float32))  # wider: top doubles twice, neighbouring bins add up
    assert collector.amax == 4.0 and collector.top == 8.0
    assert collector.counts.sum() == 6 and collector.counts.shape == (FINE_BINS,)
    width = 8.0 / FINE_BINS
    for value in (0.0, 0.1, 0.5, 1.0, 3.0, 4.0):  # each where a histogram of all six values at [0, 8) puts it
        assert collector.counts[int(np.float32(value) / width)] >= 1
    assert collector.amax_for("minmax") == 4.0


def test_percentile_on_a_known_histogram():
    counts = np.zeros(100, np.int64)
    counts[:90] = 1  # 90 values spread over the first 90 bins, 10 in the last
    counts[99] = 10
    assert percentile_amax(counts, top=100.0, percentile=90.0) == pytest.approx(90.0)
    assert percentile_amax(counts, top=100.0, percentile=100.0) == pytest.approx(100.0)


def test_entropy_keeps_the_range_of_a_uniform_distribution_and_clips_a_long_tail():
    uniform = np.full(BINS, 1000, np.int64)
    assert entropy_amax(uniform, top=1.0) == pytest.approx(1.0, abs=1e-3)
    decaying = np.round(1e6 * np.exp(-np.arange(BINS) / 60.0)).astype(np.int64)
    decaying[-1] = 1  # one outlier at the very top
    threshold = entropy_amax(decaying, top=1.0)
    assert 0.05 < threshold < 0.5  # clips the long tail and the outlier, keeps the bulk


def test_collector_memory_is_flat_in_the_number_of_samples():
    collector = RangeCollector()
    rng = np.random.default_rng(0)
    for batch in range(50):
        collector.add(rng.standard_normal(10_000).astype(np.float32) * (1 + batch / 10))
        assert collector.counts.nbytes == FINE_BINS * 8  # one fixed histogram, no samples kept
    assert collector.counts.sum() == 500_000


@pytest.mark.parametrize("shape", ["gaussian", "laplacian", "uniform", "relu"])
def test_mse_threshold_has_the_least_quantization_error_of_a_brute_force_search(shape):
    rng = np.random.default_rng(0)
    values = {
        "gaussian": rng.standard_normal(100_000),
        "laplacian": rng.laplace(size=100_000),
        "uniform": rng.uniform(-1, 1, 100_000),
        "relu": np.maximum(rng.standard_normal(100_000), 0),
    }[shape].astype(np.float32)
    collector = RangeCollector()
    collector.add(values)
    chosen = collector.amax_for("mse")

    def error(threshold):  # what INT8 Q/DQ at this threshold does to the values
        step = threshold / 127
        return np.mean((np.clip(np.round(values / step), -127, 127) * step - values) ** 2)

    best = min(error(t) for t in np.linspace(collector.amax / 32, collector.amax, 400))
    assert error(chosen) <= best * 1.01
    if shape != "uniform":
        assert chosen < 0.95 * collector.amax  # a tail is clipped, not kept

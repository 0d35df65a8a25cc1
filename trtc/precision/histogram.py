"""Streaming range statistics of one tensor, and the three ways to turn them into an amax.

The histogram of |x| has 2048 bins over [0, top]; when a later batch exceeds `top`, the bins
widen (counts are moved into the wider bins), so memory never grows with the number of samples.
"""

from __future__ import annotations

import numpy as np

BINS = 2048
QUANTIZED_LEVELS = 128  # INT8: 127 positive levels plus zero


class RangeCollector:
    def __init__(self, histogram: bool = True) -> None:
        self.histogram = histogram  # minmax needs only the running max
        self.amax = 0.0
        self.top = 0.0
        self.counts = np.zeros(BINS, np.int64)

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        if not self.histogram:
            self.amax = max(self.amax, float(max(values.max(), -values.min())))
            return
        magnitudes = np.abs(values.astype(np.float32, copy=False)).ravel()
        batch_max = float(magnitudes.max())
        self.amax = max(self.amax, batch_max)
        if batch_max > self.top:
            self._widen(batch_max)
        if self.top > 0:
            self.counts += np.histogram(magnitudes, bins=BINS, range=(0.0, self.top))[0]

    def _widen(self, new_top: float) -> None:
        if self.top > 0 and self.counts.any():
            old_width, new_width = self.top / BINS, new_top / BINS
            centres = (np.arange(BINS) + 0.5) * old_width
            target = np.minimum((centres / new_width).astype(np.int64), BINS - 1)
            widened = np.zeros(BINS, np.int64)
            np.add.at(widened, target, self.counts)
            self.counts = widened
        self.top = new_top

    def amax_for(self, method: str, percentile: float = 99.99) -> float:
        if method == "minmax" or self.top == 0 or not self.counts.any():
            return self.amax
        if method == "percentile":
            return percentile_amax(self.counts, self.top, percentile)
        return entropy_amax(self.counts, self.top)


def percentile_amax(counts: np.ndarray, top: float, percentile: float) -> float:
    cumulative = np.cumsum(counts) / counts.sum()
    index = int(np.searchsorted(cumulative, percentile / 100.0))
    return float(min(index + 1, len(counts)) * top / len(counts))


def entropy_amax(counts: np.ndarray, top: float, levels: int = QUANTIZED_LEVELS) -> float:
    """TensorRT's KL-divergence calibration: for each candidate threshold bin i (from `levels` to
    all bins), fold the clipped tail into bin i-1, quantize the first i bins to `levels` levels
    (each level's total spread evenly over its non-empty bins), expand back, and keep the
    threshold whose distribution diverges least from the reference. Level totals come from
    cumulative sums, so each candidate costs a few vector operations."""
    counts = counts.astype(np.float64)
    bins = len(counts)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    filled = np.concatenate([[0], np.cumsum(counts != 0)])
    best_divergence, best_index = np.inf, bins
    for i in range(levels, bins + 1):
        reference = counts[:i].copy()
        reference[i - 1] += cumulative[-1] - cumulative[i]
        nonzero = reference != 0
        edges = (np.arange(levels + 1) * i) // levels
        totals = cumulative[edges[1:]] - cumulative[edges[:-1]]
        populated = (filled[edges[1:]] - filled[edges[:-1]]).astype(np.float64)
        if counts[i - 1] == 0 and nonzero[i - 1]:
            populated[-1] += 1  # the folded tail made the last bin non-empty
        per_bin = np.repeat(totals / np.maximum(populated, 1.0), np.diff(edges))
        divergence = _kl(reference, np.where(nonzero, per_bin, 0.0))
        if divergence < best_divergence:
            best_divergence, best_index = divergence, i
    return float((best_index + 0.5) * top / bins)


def _kl(reference: np.ndarray, candidate: np.ndarray, eps: float = 1e-4) -> float:
    p_total, q_total = reference.sum(), candidate.sum()
    if p_total == 0 or q_total == 0:
        return np.inf
    p, q = _smooth(reference / p_total, eps), _smooth(candidate / q_total, eps)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _smooth(distribution: np.ndarray, eps: float) -> np.ndarray:
    """Give empty bins a little mass taken from the others, so a bin the quantized distribution
    left empty costs a large but finite divergence instead of infinity."""
    empty = distribution == 0
    if not empty.any() or empty.all():
        return distribution
    taken = eps * empty.sum() / (~empty).sum()
    return np.where(empty, eps, np.maximum(distribution - taken, eps * 1e-3))

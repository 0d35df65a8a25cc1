"""Streaming range statistics of one tensor, and the ways to turn them into an amax.

The histogram of |x| has FINE_BINS bins over [0, top), where top is the power of two just above
the largest |x| seen. When a batch exceeds it, top doubles (as often as needed) and neighbouring
bins add up exactly, so the final counts are those of one histogram of all samples at the final
range: calibration results do not depend on the batch size or the sample order, and memory never
grows with the number of samples. The entropy method reads the 2048-bin histogram over [0, amax]
that TensorRT's calibrator uses off these finer counts.
"""

from __future__ import annotations

import numpy as np

from trtc.spec.model import CalibrationSpec

BINS = 2048  # TensorRT's entropy histogram
FINE_BINS = (
    2**17
)  # 1 MiB of counts per tensor; 32+ fine bins per entropy bin keep KL minima where an exact histogram puts them
QUANTIZED_LEVELS = 128  # INT8: 127 positive levels plus zero
_CHUNK = 1 << 22  # values binned at a time, to bound the temporary index arrays
_SMALLEST_TOP = 2.0**-100  # below this every magnitude counts as zero (keeps the scaling finite in FP32)


class RangeCollector:
    def __init__(self, histogram: bool = True) -> None:
        self.histogram = histogram  # minmax needs only the running max
        self.amax = 0.0
        self.top = 0.0  # a power of two above amax, or 0 before any non-zero value
        self.counts = np.zeros(FINE_BINS, np.int64)  # bin 0 counts zeros even before top is known

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        magnitudes = np.abs(values.astype(np.float32, copy=False)).ravel()
        batch_max = float(magnitudes.max())
        self.amax = max(self.amax, batch_max)
        if not self.histogram:
            return
        if batch_max >= self.top:
            self._grow(max(batch_max, _SMALLEST_TOP))
        scale = np.float32(FINE_BINS / self.top)  # a power of two: scaling is exact, so is the bin index
        for start in range(0, magnitudes.size, _CHUNK):
            # Scaled in place (the magnitudes are this method's own copy), and indexed as bincount
            # reads them (an int32 index was converted to intp again inside it).
            chunk = magnitudes[start : start + _CHUNK]
            np.multiply(chunk, scale, out=chunk)
            self.counts += np.bincount(chunk.astype(np.intp), minlength=FINE_BINS)

    def _grow(self, new_max: float) -> None:
        new_top = float(np.ldexp(1.0, int(np.frexp(new_max)[1])))  # smallest power of two above new_max
        if self.top > 0:
            factor = int(new_top / self.top)
            merged = (
                self.counts.reshape(-1, factor).sum(axis=1) if factor < FINE_BINS else self.counts.sum(keepdims=True)
            )
            self.counts = np.zeros(FINE_BINS, np.int64)
            self.counts[: len(merged)] = merged
        self.top = new_top

    def amax_for(self, method: str, percentile: float = CalibrationSpec.percentile) -> float:
        if method == "minmax" or self.amax == 0 or not self.histogram:
            return self.amax
        if method == "percentile":
            return min(percentile_amax(self.counts, self.top, percentile), self.amax)
        if method == "mse":
            return mse_amax(self.histogram_to_amax(), self.amax)
        return entropy_amax(self.histogram_to_amax(), self.amax)

    def histogram_to_amax(self, bins: int = BINS) -> np.ndarray:
        """`bins` counts over [0, amax]; a fine bin cut by an edge is split in proportion (within a
        fine bin, values are taken as evenly spread)."""
        width = self.top / FINE_BINS
        last = min(int(self.amax / width), FINE_BINS - 1)  # the fine bin holding amax
        cumulative = np.concatenate([[0], np.cumsum(self.counts[: last + 1])]).astype(np.float64)
        edges = np.append(np.arange(last + 1) * width, self.amax)
        return np.diff(np.interp(np.linspace(0.0, self.amax, bins + 1), edges, cumulative))


def percentile_amax(counts: np.ndarray, top: float, percentile: float) -> float:
    cumulative = np.cumsum(counts) / counts.sum()
    index = int(np.searchsorted(cumulative, percentile / 100.0))
    return float(min(index + 1, len(counts)) * top / len(counts))


def entropy_amax(counts: np.ndarray, top: float, levels: int = QUANTIZED_LEVELS) -> float:
    """TensorRT's KL-divergence calibration on a histogram of |x| over [0, top]. For each
    candidate threshold bin i (from `levels` to all bins): the reference P is the first i bins
    with the clipped tail added to bin i-1; the candidate Q quantizes the first i bins (without
    the tail) to `levels` levels, each level's total spread evenly over its non-empty bins; the
    threshold is (i + 0.5) bins for the i with the least KL(P || Q). The zero bin takes its
    neighbour's count: exact zeros (half a ReLU output) quantize exactly at any threshold, and as
    a spike they would drag every threshold down to bin `levels`.

    Q is constant within a level, so KL(P || Q) = sum p log p - sum over levels of (P's mass in
    the level) * log(q of the level): prefix sums give every candidate at once."""
    counts = np.asarray(counts, np.float64).copy()
    bins = len(counts)
    if bins > 1:
        counts[0] = counts[1]
    total = counts.sum()
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    filled = np.concatenate([[0], np.cumsum(counts > 0)])
    count_log_count = np.concatenate([[0.0], np.cumsum(_x_log_x(counts))])
    candidates = np.arange(levels, bins + 1)
    kept = cumulative[candidates]
    tail = total - kept
    starts = -((-np.arange(levels + 1)[None, :] * candidates[:, None]) // levels)  # level l: bins ceil(l*i/levels)...
    level_totals = cumulative[starts[:, 1:]] - cumulative[starts[:, :-1]]
    level_filled = filled[starts[:, 1:]] - filled[starts[:, :-1]]
    last = counts[candidates - 1] + tail  # P's last bin holds the clipped tail
    p_log_p = (count_log_count[candidates - 1] + _x_log_x(last)) / total - np.log(total)
    level_mass = level_totals.copy()
    level_mass[:, -1] += tail
    with np.errstate(divide="ignore", invalid="ignore"):
        level_q = np.log(level_totals / (np.maximum(level_filled, 1) * kept[:, None]))
        p_log_q = np.sum(np.where(level_mass > 0, level_mass * level_q, 0.0), axis=1) / total
    divergence = p_log_p - p_log_q
    # Q empty, or empty where P holds the clipped tail: infinite divergence
    divergence[(kept == 0) | ((counts[candidates - 1] == 0) & (tail > 0))] = np.inf
    best_index = int(candidates[np.argmin(divergence)]) if np.isfinite(divergence).any() else bins
    return float(min((best_index + 0.5) * top / bins, top))


def _x_log_x(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values * np.log(np.where(values > 0, values, 1.0)), 0.0)


def mse_amax(counts: np.ndarray, top: float, levels: int = QUANTIZED_LEVELS - 1, candidates: int = 512) -> float:
    """The clip threshold t in (top/32, top] whose symmetric quantization (step t / levels) has the
    least mean squared error over a histogram of |x| on [0, top]: values inside [0, t] pay
    rounding, values above pay (|x| - t)^2. Values are taken as evenly spread within a bin, and
    both errors are integrated exactly over each bin."""
    counts = np.asarray(counts, np.float64)
    width = top / len(counts)
    filled = np.flatnonzero(counts)
    low, high, weight = filled * width, (filled + 1) * width, counts[filled] / width
    best_error, best_threshold = np.inf, top
    thresholds = np.linspace(top / 32, top, candidates)
    for chunk in np.array_split(thresholds, max(1, candidates // 64)):
        t = chunk[:, None]
        step = t / levels
        inside_low, inside_high = np.minimum(low, t), np.minimum(high, t)
        rounding = _rounding_integral(inside_high, step) - _rounding_integral(inside_low, step)
        above_low, above_high = np.maximum(low, t), np.maximum(high, t)
        clipping = ((above_high - t) ** 3 - (above_low - t) ** 3) / 3
        errors = ((rounding + clipping) * weight).sum(axis=1)
        best = int(np.argmin(errors))
        if errors[best] < best_error:
            best_error, best_threshold = errors[best], float(chunk[best])
    return best_threshold


def _rounding_integral(x: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The integral from 0 to x of (v - step * round(v / step))^2 dv: whole periods of the
    sawtooth give step^3 / 12 each, the first half period step^3 / 24, the last a cube."""
    k = np.floor(x / step + 0.5)
    last = ((x - step * k) ** 3 + step**3 / 8) / 3
    return np.where(k == 0, x**3 / 3, step**3 / 24 + (k - 1) * step**3 / 12 + last)

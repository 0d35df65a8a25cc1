"""Reproducible random feeds for a model at concrete shapes, dtype-aware: floats ~ N(0, 1),
integers in a safe range (0..1 unless the spec declares `inputs: {name: {range: [lo, hi]}}`),
booleans half true."""

from __future__ import annotations

import numpy as np

from trtc.graph.profiles import ModelInput


def random_feeds(
    inputs: list[ModelInput],
    shapes: dict[str, tuple[int, ...]],
    ranges: dict[str, tuple[float, float]] | None = None,
    seed: int = 0,
    fixed: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """`fixed`: inputs fed exactly these values (shape-tensor inputs: random shapes would not fit)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for item in inputs:
        if item.name not in shapes:
            continue
        shape, dtype = shapes[item.name], np.dtype(item.dtype if item.dtype != "undefined" else "float32")
        if fixed and item.name in fixed:
            feeds[item.name] = np.asarray(fixed[item.name]).astype(dtype)
            continue
        low, high = (ranges or {}).get(item.name, (None, None))
        if dtype.kind == "f":
            values = rng.standard_normal(shape) if low is None else rng.uniform(low, high, shape)
        elif dtype.kind in "iu":
            values = rng.integers(0 if low is None else int(low), (1 if high is None else int(high)) + 1, shape)
        elif dtype.kind == "b":
            values = rng.random(shape) < 0.5
        else:
            raise ValueError(f"input {item.name}: cannot make random values of type {dtype}")
        feeds[item.name] = np.asarray(values).astype(dtype)
    return feeds

"""Calibration: activation ranges from onnxruntime runs on the CPU, streamed batch by batch.

Only the tensors the Q/DQ plan needs become extra outputs; each batch's values update one
`RangeCollector` per tensor and are dropped, so memory stays flat however many samples run.
Ranges are cached in a JSON file keyed by the model, the data and the method: a cache made from
anything else is ignored with a warning, never silently reused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import onnx

from trtc.graph.reference import Reference, with_outputs
from trtc.precision.histogram import RangeCollector


@dataclass
class Calibration:
    ranges: dict[str, float]
    samples: int = 0
    cache: str = "not used"  # "hit", "written", "stale: ...", "not used"
    warnings: list[str] = field(default_factory=list)


def collect_ranges(model: onnx.ModelProto, tensors: list[str], batches: Iterable[dict[str, np.ndarray]], method: str,
                   percentile: float = 99.99, progress: Callable[[int], None] | None = None,
                   channel_tensors: Iterable[str] = (), unclipped: Iterable[str] = ()) -> tuple[dict[str, float], int, dict[str, list[float]]]:
    """Per-tensor ranges by `method` (the largest |x| for `unclipped` tensors), the number of
    samples seen, and the largest |x| of each channel (axis 1) of `channel_tensors`."""
    if not tensors:  # nothing to quantize: no run (onnxruntime refuses a run with no outputs)
        return {}, 0, {}
    runner = Reference(with_outputs(model, tensors))
    collectors = {name: RangeCollector(histogram=method != "minmax") for name in tensors}
    channel_amax: dict[str, np.ndarray] = {name: np.zeros(0) for name in channel_tensors if name in collectors}
    samples = 0
    for feeds in batches:
        values = runner.run(feeds)
        for name, collector in collectors.items():
            collector.add(values[name])
        for name, seen in channel_amax.items():
            other_axes = tuple(a for a in range(values[name].ndim) if a != 1)
            batch_amax = np.abs(values[name]).max(axis=other_axes).astype(np.float64)
            channel_amax[name] = np.maximum(seen, batch_amax) if seen.size else batch_amax
        del values
        samples += len(next(iter(feeds.values())))
        if progress:
            progress(samples)
    keep = set(unclipped)
    ranges = {name: c.amax_for("minmax" if name in keep else method, percentile) for name, c in collectors.items()}
    return ranges, samples, {name: [float(v) for v in amax] for name, amax in channel_amax.items()}


# Bumped whenever the same data would give other ranges, so caches of an older calibrator go stale.
CALIBRATOR = "exact-histogram-1"


def cache_key(model_sha256: str, data_fingerprint: str, method: str, percentile: float) -> dict:
    return {"model_sha256": model_sha256, "data_fingerprint": data_fingerprint, "method": method, "calibrator": CALIBRATOR,
            "percentile": percentile if method == "percentile" else None}


def read_cache(path: Path | None, key: dict, tensors: list[str],
               wanted: dict[str, Iterable[str]] | None = None) -> tuple[dict[str, float] | None, str, dict[str, dict[str, list[float]]]]:
    """The cached ranges when `path` was made from the same `key` and holds every tensor asked
    for, with the per-channel statistics `wanted` names (section -> keys, e.g. "channel_ranges"
    -> tensors); otherwise None and why."""
    wanted = wanted or {}
    if path is None or not path.exists():
        return None, "miss", {}
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"stale: cannot read {path} ({exc})", {}
    differs = [k for k, v in key.items() if cached.get(k) != v]
    if differs:
        return None, f"stale: {path} was made for another {', '.join(d.replace('_', ' ') for d in differs)}", {}
    ranges = cached.get("ranges", {})
    missing = [f"the range of {t}" for t in tensors if t not in ranges]
    missing += [f"the {section.replace('_', ' ')} of {k}" for section, keys in wanted.items() for k in keys if k not in cached.get(section, {})]
    if missing:
        return None, f"stale: {path} lacks {missing[0]}", {}
    found = {section: {k: [float(v) for v in cached[section][k]] for k in keys} for section, keys in wanted.items()}
    return {t: float(ranges[t]) for t in tensors}, "hit", found


def cache_document(key: dict, ranges: dict[str, float], samples: int, per_channel: dict[str, dict[str, list[float]]] | None = None) -> str:
    """The cache file: the key, the ranges and per-channel statistics by section."""
    document = {**key, "samples": samples, "ranges": ranges, **{k: v for k, v in (per_channel or {}).items() if v}}
    return json.dumps(document, indent=1, sort_keys=True) + "\n"

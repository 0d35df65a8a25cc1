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
                   percentile: float = 99.99, progress: Callable[[int], None] | None = None) -> tuple[dict[str, float], int]:
    if not tensors:  # nothing to quantize: no run (onnxruntime refuses a run with no outputs)
        return {}, 0
    runner = Reference(with_outputs(model, tensors))
    collectors = {name: RangeCollector(histogram=method != "minmax") for name in tensors}
    samples = 0
    for feeds in batches:
        values = runner.run(feeds)
        for name, collector in collectors.items():
            collector.add(values[name])
        del values
        samples += len(next(iter(feeds.values())))
        if progress:
            progress(samples)
    return {name: c.amax_for(method, percentile) for name, c in collectors.items()}, samples


# Bumped whenever the same data would give other ranges, so caches of an older calibrator go stale.
CALIBRATOR = "exact-histogram-1"


def cache_key(model_sha256: str, data_fingerprint: str, method: str, percentile: float) -> dict:
    return {"model_sha256": model_sha256, "data_fingerprint": data_fingerprint, "method": method, "calibrator": CALIBRATOR,
            "percentile": percentile if method == "percentile" else None}


def read_cache(path: Path | None, key: dict, tensors: list[str]) -> tuple[dict[str, float] | None, str]:
    if path is None or not path.exists():
        return None, "miss"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"stale: cannot read {path} ({exc})"
    differs = [k for k, v in key.items() if cached.get(k) != v]
    if differs:
        return None, f"stale: {path} was made for another {', '.join(d.replace('_', ' ') for d in differs)}"
    ranges = cached.get("ranges", {})
    missing = [t for t in tensors if t not in ranges]
    if missing:
        return None, f"stale: {path} lacks the range of {missing[0]}"
    return {t: float(ranges[t]) for t in tensors}, "hit"


def cache_document(key: dict, ranges: dict[str, float], samples: int) -> str:
    return json.dumps({**key, "samples": samples, "ranges": ranges}, indent=1, sort_keys=True) + "\n"

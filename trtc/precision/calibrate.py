"""Calibration: activation ranges from onnxruntime runs on the CPU, streamed batch by batch.

Only the tensors the Q/DQ plan needs become extra outputs; each batch's values update one
`RangeCollector` per tensor and are dropped, so memory stays flat however many samples run.
Ranges are cached in a JSON file keyed by everything they depend on (`cache_key`): a cache made
from anything else, or one that is not a valid cache, is ignored with a warning, never reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np
import onnx

from trtc import __version__
from trtc.graph.reference import Reference
from trtc.precision.data import batch_samples, cut_at
from trtc.precision.histogram import RangeCollector
from trtc.precision.magnitudes import LargestValues, fp32_outputs, with_reductions
from trtc.spec.model import CalibrationSpec


@dataclass
class Calibration:
    ranges: dict[str, float]
    samples: int = 0
    cache: str = "not used"  # "hit", "written", "stale: ...", "not used"
    warnings: list[str] = field(default_factory=list)


class Collected(NamedTuple):
    ranges: dict[str, float]
    samples: int
    channel_ranges: dict[str, list[float]]  # the largest |x| per channel, over every sample
    channel_ranges_after: dict[str, list[float]]  # the same over the samples after the held-back ones


def collect_ranges(
    model: onnx.ModelProto,
    tensors: list[str],
    batches: Iterable[dict[str, np.ndarray]],
    method: str,
    percentile: float = CalibrationSpec.percentile,
    progress: Callable[[int], None] | None = None,
    channel_tensors: Iterable[str] | dict[str, int] = (),
    unclipped: Iterable[str] = (),
    largest: LargestValues | None = None,
    held_back: int = 0,
) -> Collected:
    """Per-tensor ranges by `method` (the largest |x| for `unclipped` tensors), the number of
    samples seen, and the largest |x| of each channel of `channel_tensors` (axis 1, or the axis a
    mapping gives), over every sample and over the samples after the first `held_back` (the
    migration search judges its strengths on those: migrate.py). `largest`, when given, gathers
    the largest |x| of every float tensor in the same runs (the FP16 rules')."""
    reduced = fp32_outputs(model) if largest is not None else []
    if not tensors and not reduced:  # nothing to quantize: no run (onnxruntime refuses a run with no outputs)
        return Collected({}, 0, {}, {})
    graph, watched = with_reductions(model, reduced, tensors)
    # Basic optimizations in priority order free each tensor once its readers ran: on a
    # ResNet-50-shaped model (32 samples, batch 16) 1.4 GB at peak, with the FP16 reductions too,
    # where all optimizations took 2.0 GB without them and 5.6 GB with them.
    runner = Reference(graph, optimize="basic", free_early=True)
    collectors = {name: RangeCollector(histogram=method != "minmax") for name in tensors}
    channel_axes = channel_tensors if isinstance(channel_tensors, dict) else dict.fromkeys(channel_tensors, 1)
    channel_axes = {name: axis for name, axis in channel_axes.items() if name in collectors}
    # Per tensor: the largest |x| per channel over every sample and over those after the held-back
    # ones (ranges are batch-independent, so cutting the batch that spans them changes none).
    channel_amax: dict[str, np.ndarray] = {}
    after_held_back: dict[str, np.ndarray] = {}
    samples = 0
    # Each tensor's statistics on its own: numpy lets go of the GIL in the large array operations
    # (abs, bincount, reductions, the entropy search), so they run on every core between runs.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="trtc-ranges") as pool:
        for feeds, early in cut_at(batches, held_back):
            values = runner.run(feeds)
            list(pool.map(RangeCollector.add, collectors.values(), [values[name] for name in collectors]))
            found = dict(
                zip(
                    channel_axes,
                    pool.map(_channel_amax, [values[name] for name in channel_axes], channel_axes.values()),
                )
            )
            for name, batch_amax in found.items():
                for seen_amax in (channel_amax,) if early else (channel_amax, after_held_back):
                    seen_amax[name] = np.maximum(seen_amax[name], batch_amax) if name in seen_amax else batch_amax
            if largest is not None:
                largest.add_batch(feeds, values, watched)
            del values, found
            samples += batch_samples(feeds)
            if progress:
                progress(samples)
        keep = set(unclipped)
        methods = ["minmax" if name in keep else method for name in collectors]
        amax = pool.map(RangeCollector.amax_for, collectors.values(), methods, [percentile] * len(methods))
        ranges = dict(zip(collectors, amax))
    return Collected(ranges, samples, _as_lists(channel_amax), _as_lists(after_held_back))


def _channel_amax(values: np.ndarray, axis: int) -> np.ndarray:
    """The largest |x| of each channel along `axis`, in float64."""
    axis %= values.ndim
    return np.abs(values).max(axis=tuple(a for a in range(values.ndim) if a != axis)).astype(np.float64)


def _as_lists(amax: dict[str, np.ndarray]) -> dict[str, list[float]]:
    return {name: [float(v) for v in values] for name, values in amax.items()}


# Bumped whenever the same data would give other ranges, so caches of an older calibrator go stale.
CALIBRATOR = "exact-histogram-2"


def cache_key(model_sha256: str, graph: onnx.ModelProto, data_fingerprint: str, settings: dict, inputs: dict) -> dict:
    """Everything the ranges depend on: the graph calibration runs on (after passes and pinning),
    the data, every calibration setting, the pinned values and value ranges, and trtc's version.
    `settings` holds method, percentile, sample_limit, batch and preprocess. JSON-normalized (tuples
    become lists) so it compares equal to itself read back from the cache file."""
    key = {
        "trtc": __version__,
        "model_sha256": model_sha256,
        "graph_sha256": graph_digest(graph),
        "data_fingerprint": data_fingerprint,
        **settings,
        "inputs": inputs,
    }
    return json.loads(json.dumps(key, sort_keys=True))


def graph_digest(model: onnx.ModelProto) -> str:
    """SHA-256 of what runs: opsets, functions, inputs, outputs, nodes and weights, one message at
    a time (a whole model over 2 GB cannot be serialized; each part can). Shape annotations
    (value_info) change no result and are left out."""
    digest = hashlib.sha256()
    graph = model.graph
    for part in (
        *model.opset_import,
        *model.functions,
        *graph.input,
        *graph.output,
        *graph.node,
        *graph.initializer,
        *graph.sparse_initializer,
    ):
        data = part.SerializeToString(deterministic=True)
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


_KEY_NAMES = {
    "trtc": "trtc version",
    "model_sha256": "model",
    "graph_sha256": "graph (after passes and pinned inputs)",
    "sample_limit": "sample count",
    "inputs": "pinned values or value ranges",
    "fp16_ranges": "fallback precision",
}


def read_cache(
    path: Path | None,
    key: dict,
    tensors: list[str],
    known: set[str],
    wanted: dict[str, Iterable[str] | None] | None = None,
) -> tuple[dict[str, float] | None, int, str, dict[str, dict]]:
    """The cached ranges of `tensors`, the samples they came from and the per-channel statistics
    `wanted` names (section -> keys, e.g. "channel_ranges" -> tensors; None: every entry, one
    number each); or None and why not: "miss" (no file), "stale: ..." (made for other inputs) or
    "ignored ..." (not a valid cache). `known` are the graph's tensor names."""
    ranges, samples, status = _read_ranges(path, key, tensors, known)
    if ranges is None:
        return None, 0, status, {}
    cached = json.loads(path.read_text())
    found: dict[str, dict] = {}
    for section, keys in (wanted or {}).items():
        if keys is None:  # one number per tensor; none written when there were none
            numbers = cached.get(section, {})
            if not isinstance(numbers, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in numbers.values()
            ):
                label = section.replace("_", " ")
                return None, 0, f"ignored {path}: its {label} are not tensor names with numbers of 0 or more", {}
            found[section] = {k: float(v) for k, v in numbers.items()}
            continue
        values = cached.get(section) if isinstance(cached.get(section), dict) else {}
        missing = [k for k in keys if k not in values]
        if missing:
            return None, 0, f"stale: {path} lacks the {section.replace('_', ' ')} of {missing[0]}", {}
        try:
            found[section] = {k: [float(v) for v in values[k]] for k in keys}
        except (TypeError, ValueError):
            return None, 0, f"ignored {path}: its {section.replace('_', ' ')} are not lists of numbers", {}
        if not all(math.isfinite(v) for numbers in found[section].values() for v in numbers):
            return (
                None,
                0,
                f"ignored {path}: its {section.replace('_', ' ')} hold a value that is not a finite number",
                {},
            )
    return ranges, samples, status, found


def _read_ranges(
    path: Path | None, key: dict, tensors: list[str], known: set[str]
) -> tuple[dict[str, float] | None, int, str]:
    if path is None or not path.exists():
        return None, 0, "miss"
    try:
        cached = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return None, 0, f"ignored {path}: cannot read it ({exc})"
    except ValueError as exc:
        return None, 0, f"ignored {path}: not valid JSON ({exc})"
    if not isinstance(cached, dict):
        return None, 0, f"ignored {path}: not a calibration cache (a JSON object with ranges)"
    differs = [k for k, v in key.items() if cached.get(k) != v]
    if differs:
        return (
            None,
            0,
            f"stale: {path} was made for another {', '.join(_KEY_NAMES.get(d, d.replace('_', ' ')) for d in differs)}",
        )
    problem = _cache_problem(cached, key["sample_limit"], known)
    if problem:
        return None, 0, f"ignored {path}: {problem}"
    missing = [t for t in tensors if t not in cached["ranges"]]
    if missing:
        return None, 0, f"stale: {path} lacks the range of {missing[0]}"
    return {t: float(cached["ranges"][t]) for t in tensors}, cached["samples"], "hit"


def _cache_problem(cached: dict, samples: int, known: set[str]) -> str | None:
    """What makes a cache with the right key unusable, or None."""
    used = cached.get("samples")
    if not isinstance(used, int) or isinstance(used, bool) or not 0 <= used <= samples:
        return f"'samples' is not a sample count (0 to {samples}): {used!r}"
    ranges = cached.get("ranges")
    if not isinstance(ranges, dict):
        return "'ranges' is not a mapping of tensor names to numbers"
    for name, value in ranges.items():
        if name not in known:
            return f"'{name}' is not a tensor of the graph"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"the range of '{name}' is {value!r}, not a number"
        if not math.isfinite(_as_float(value)):
            return f"the range of '{name}' is {value}, not a finite number"
        if value < 0:
            return f"the range of '{name}' is negative ({value})"
    return None


def tensor_names(model: onnx.ModelProto) -> set[str]:
    """The graph's inputs and node outputs: the tensors a cache may hold ranges of."""
    return {value.name for value in model.graph.input} | {
        out for node in model.graph.node for out in node.output if out
    }


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float (JSON allows any number of digits)
        return math.inf


def cache_document(
    key: dict, ranges: dict[str, float], samples: int, per_channel: dict[str, dict] | None = None
) -> str:
    """The cache file: the key, the ranges and per-channel (or per-tensor) statistics by section."""
    document = {**key, "samples": samples, "ranges": ranges, **{k: v for k, v in (per_channel or {}).items() if v}}
    return json.dumps(document, indent=1, sort_keys=True) + "\n"

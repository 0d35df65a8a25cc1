"""Calibration for INT8 / FP8: the sample stream (real data, minus the held-out samples, or
random inputs) and the one pass that collects what quantization needs from it (ranges, channel
ranges, migration strengths, bias shifts), or a matching cache instead."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx

from trtc.graph.profiles import ModelInput
from trtc.graph.random_inputs import random_feeds
from trtc.precision.bias_correction import SAMPLES as BIAS_SAMPLES
from trtc.precision.bias_correction import bias_shifts
from trtc.precision.calibrate import CALIBRATOR, cache_document, cache_key, collect_ranges, read_cache, tensor_names
from trtc.precision.data import HOLD_OUT_EVERY, SampleSource
from trtc.precision.magnitudes import LargestValues
from trtc.precision.migrate import MIGRATION_SAMPLES, choose_strengths
from trtc.precision.qdq import FP16_SMALLEST
from trtc.spec.model import ShapeRange, Spec
from trtc.spec.preflight import calibration_data


@dataclass
class Calibrated:
    """Activation ranges and where they came from. They do not depend on which layers are
    quantized, so auto_fallback's steps reuse one calibration."""

    ranges: dict[str, float]
    channel_ranges: dict[str, list[float]]  # per channel: depthwise convolutions' inputs, migration candidates
    bias_shifts: dict[str, list[float]]  # per layer, what INT8 adds to each output channel
    strengths: dict[str, float]  # migrated inputs of dense layers and how strongly (migrate.py)
    largest: dict[str, float] | None  # max |x| per float tensor, for the FP16 fallback's rules
    samples: int
    status: str  # the cache: "hit", "written", "not used"
    description: str
    kind: str  # "real" (the user's data) or "random"
    cache_file: tuple[Path, str] | None
    warnings: list[str]
    seconds: float  # wall time of the calibration runs (or of reading the cache)


@dataclass
class CalibrationStream:
    """The calibration samples as calibration reads them: `batch` at a time, without the ones
    held out for accuracy."""

    description: str
    fingerprint: Callable[[], str]  # hashes the data files: only when a cache key needs it
    kind: str  # "real" (the user's data) or "random"
    batch: int
    read: Callable[[int], Iterator[dict[str, np.ndarray]]]  # at most this many samples -> batches


def calibration_stream(
    spec: Spec, inputs: list[ModelInput], profile: dict[str, ShapeRange], hold_out: bool
) -> CalibrationStream:
    settings = spec.precision.calibration
    # No larger than the engine's own batch: a model exported with a static batch of 1 takes 1.
    batch = min([settings.batch, *(r.max[0] for r in profile.values() if r.max)])
    if calibration_data(spec) == "random":
        fingerprint = f"random at {sorted((name, r.opt[1:]) for name, r in profile.items())}"
        return CalibrationStream(
            "random inputs at the opt shape",
            lambda: fingerprint,
            "random",
            batch,
            lambda limit: _random_batches(inputs, profile, spec, batch, limit),
        )
    base = spec.source.parent if spec.source else Path.cwd()
    source = SampleSource(settings.data, "precision.calibration.data", inputs, base, settings.preprocess)
    return CalibrationStream(
        source.description,
        source.fingerprint,
        "real",
        batch,
        lambda limit: source.batches(batch, limit, "calibration" if hold_out else "all"),
    )


def calibrate(
    model: onnx.ModelProto,
    spec: Spec,
    inputs: list[ModelInput],
    profile: dict[str, ShapeRange],
    model_sha256: str,
    activations: list[str],
    progress: Callable[[int, int], None] | None = None,
    hold_out: bool = False,
    channel_tensors: list[str] = (),
    corrected_layers: list[str] = (),
    unclipped: list[str] = (),
    migrating: dict[str, int] | None = None,
    layers: list[str] = (),
) -> Calibrated:
    """Ranges of `activations`, per-channel ranges of `channel_tensors` (depthwise inputs) and of
    the `migrating` candidates (with their channel axes), the migration strength of each candidate
    (its readers among `layers`; one pass over the first samples) and the bias shifts of
    `corrected_layers` (one more pass), from the cache when it matches. `hold_out`: skip the
    samples accuracy is measured on (every HOLD_OUT_EVERY-th)."""
    started = time.perf_counter()
    settings = spec.precision.calibration
    method, percentile, samples = settings.method, settings.percentile, settings.samples
    stream = calibration_stream(spec, inputs, profile, hold_out)
    batch, fingerprint, description = stream.batch, stream.fingerprint(), stream.description
    # The FP16 fallback's range rules read every float tensor, gathered in calibration's own runs.
    largest = LargestValues() if spec.precision.fallback == "fp16" else None
    warnings: list[str] = []
    if stream.kind == "random":
        warnings.append(
            "precision.calibration.data: random inputs give ranges that fit no real data; use them for smoke tests only"
        )

    def batches():
        return stream.read(samples)

    base = spec.source.parent if spec.source else Path.cwd()
    cache_path = (base / settings.cache).resolve() if settings.cache else None
    key = cache_key(
        model_sha256,
        model,
        fingerprint,
        {
            "method": method,
            "percentile": percentile if method == "percentile" else None,
            "sample_limit": samples,
            "batch": batch,
            "preprocess": settings.preprocess,
            "calibrator": CALIBRATOR,
            "equalize": settings.equalize,
            "bias_correction": settings.bias_correction and f"first {BIAS_SAMPLES} samples",
            "unclipped": sorted(unclipped),
            "held_out": f"every {HOLD_OUT_EVERY}th sample" if hold_out else None,
            "fp16_ranges": "largest |x| of every float tensor" if largest is not None else None,
            "migrate": settings.migrate,
        },
        _input_settings(spec),
    )
    migrating = migrating or {}
    channel_axes = {**dict.fromkeys(channel_tensors, 1), **migrating}
    ranges, used, status, found = read_cache(
        cache_path,
        key,
        activations,
        tensor_names(model),
        {
            "channel_ranges": channel_axes,
            "bias_shifts": corrected_layers,
            "migration": migrating,
            **({"largest_values": None} if largest is not None else {}),
        },
    )
    channel_ranges, shifts = found.get("channel_ranges", {}), found.get("bias_shifts", {})
    strengths = {t: values[0] for t, values in found.get("migration", {}).items() if values and values[0] > 0}
    largest_values = found.get("largest_values")
    if status.startswith(("stale", "ignored")):
        warnings.append(f"precision.calibration.cache: {status}; calibrating again")
    if ranges is None:
        collected = collect_ranges(
            model,
            activations,
            batches(),
            method,
            percentile,
            (lambda done: progress(done, samples)) if progress else None,
            channel_axes,
            unclipped,
            largest,
            held_back=MIGRATION_SAMPLES if migrating else 0,
        )
        ranges, used, channel_ranges = collected.ranges, collected.samples, collected.channel_ranges
        largest_values = largest.largest if largest is not None else None
        floor = FP16_SMALLEST if spec.precision.fallback == "fp16" else 0.0
        unseen = {t: collected.channel_ranges_after[t] for t in migrating if t in collected.channel_ranges_after}
        strengths = choose_strengths(model, migrating, list(layers), ranges, batches, unseen, floor)
        applied = {t: channel_ranges[t] for t in [*channel_tensors, *strengths]}
        shifts = (
            bias_shifts(model, list(corrected_layers), ranges, applied, batches(), floor, strengths=strengths)
            if corrected_layers
            else {}
        )
        status = "written" if cache_path else "not used"
    per_channel = {
        "channel_ranges": channel_ranges,
        "bias_shifts": shifts,
        "largest_values": largest_values,
        "migration": {t: [strengths.get(t, 0.0)] for t in migrating},
    }
    cache_file = (
        (cache_path, cache_document(key, ranges, used, per_channel)) if cache_path and status == "written" else None
    )
    return Calibrated(
        ranges,
        channel_ranges,
        shifts,
        strengths,
        largest_values,
        used,
        status,
        description,
        stream.kind,
        cache_file,
        warnings,
        time.perf_counter() - started,
    )


def _input_settings(spec: Spec) -> dict:
    """Pinned values and value ranges, as the calibration cache key holds them."""
    return {
        name: {"value": s.value, "range": s.value_range}
        for name, s in sorted(spec.input_settings.items())
        if s.value is not None or s.value_range
    }


def _random_batches(inputs, profile, spec, batch, samples):
    shapes = {name: (batch, *r.opt[1:]) for name, r in profile.items()}
    for index in range(-(-samples // batch)):
        yield random_feeds(inputs, shapes, spec.value_ranges, seed=index)

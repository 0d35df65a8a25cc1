"""The samples a reduced-precision build measures its accuracy on, and whether they are enough:

- `accuracy.data` when the spec gives it;
- else, for INT8/FP8 with the user's calibration data, every HOLD_OUT_EVERY-th calibration sample,
  held out of calibration (only when they are enough: otherwise calibration uses them all);
- else random inputs at the opt shape (FP16/BF16, or `calibration.data: random`).

A figure needs MIN_ACCURACY_SAMPLES samples. With fewer, a gate is a spec error naming the counts
and the fix; without a gate the accuracy is "not measured", with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from trtc.graph.profiles import ModelInput
from trtc.graph.random_inputs import random_feeds
from trtc.graph.shape_inputs import feed_values
from trtc.precision.data import HOLD_OUT_EVERY, SampleSource
from trtc.spec.model import ShapeRange, Spec
from trtc.spec.preflight import MIN_ACCURACY_SAMPLES, RAISE_SAMPLES, asked_too_few, too_few_for_gates

Batches = Iterator[dict[str, np.ndarray]]


@dataclass
class AccuracySamples:
    source: str  # where the samples come from, for the report
    kind: str  # "real" (the user's data) or "random"
    held_out: bool  # taken out of the calibration data: calibration skips them
    shortfall: str | None  # why they are too few for a figure; None when enough
    fix: str
    limit: int  # accuracy.samples: measured at most
    stream: Callable[[int], Batches]  # how many -> batches

    def batches(self) -> Batches:
        return self.stream(self.limit)

    def not_measured(self, mode: str) -> str:
        return f"{mode} accuracy was NOT measured: {self.reason}"

    @property
    def reason(self) -> str:
        return f"{self.shortfall}, fewer than the {MIN_ACCURACY_SAMPLES} a figure needs; {self.fix}"

    def require_enough(self, gates: dict) -> None:
        """A gate on too few samples would pass or fail on noise: a spec error, exit 2."""
        if gates and self.shortfall:
            raise too_few_for_gates(gates, self.shortfall, self.fix)


def accuracy_samples(spec: Spec, inputs: list[ModelInput], profile: dict[str, ShapeRange]) -> AccuracySamples:
    limit = spec.accuracy.samples
    base = spec.source.parent if spec.source else Path.cwd()
    batch = max((r.opt[0] for r in profile.values() if r.opt), default=1)
    calibration = spec.precision.calibration
    preprocess = calibration.preprocess
    too_few_asked = asked_too_few(spec.accuracy)
    if spec.accuracy.data is not None:
        data = SampleSource(spec.accuracy.data, "accuracy.data", inputs, base, preprocess)
        found = data.count("all", MIN_ACCURACY_SAMPLES)
        shortfall = too_few_asked or (f"accuracy.data holds {found}" if found < MIN_ACCURACY_SAMPLES else None)
        return AccuracySamples(
            f"accuracy.data: {data.description}",
            "real",
            False,
            shortfall,
            RAISE_SAMPLES if too_few_asked else "add samples to accuracy.data",
            limit,
            lambda n: data.batches(batch, n),
        )
    if spec.precision.mode in ("int8", "fp8") and calibration.real_data:
        data = SampleSource(calibration.real_data, "precision.calibration.data", inputs, base, preprocess)
        held = data.count("held out", MIN_ACCURACY_SAMPLES)
        shortfall = too_few_asked
        if held < MIN_ACCURACY_SAMPLES:
            total = data.count("all", MIN_ACCURACY_SAMPLES * HOLD_OUT_EVERY)
            shortfall = (
                shortfall or f"the calibration data holds out {held} (every {HOLD_OUT_EVERY}th of its {total} samples)"
            )
        fix = (
            RAISE_SAMPLES
            if too_few_asked
            else f"give {MIN_ACCURACY_SAMPLES * HOLD_OUT_EVERY} or more calibration samples, "
            f"or accuracy.data with {MIN_ACCURACY_SAMPLES} or more"
        )
        return AccuracySamples(
            f"every {HOLD_OUT_EVERY}th sample of {data.description}",
            "real",
            held >= MIN_ACCURACY_SAMPLES,
            shortfall,
            fix,
            limit,
            lambda n: data.batches(batch, n, "held out"),
        )
    shapes = {name: r.opt for name, r in profile.items()}
    ranges = spec.value_ranges

    def random_batches(n: int) -> Batches:
        return (
            random_feeds(inputs, shapes, ranges, seed=1000 + i, fixed=feed_values(profile, "opt"))
            for i in range(max(1, -(-n // batch)))
        )

    return AccuracySamples(
        f"random inputs at the opt shape ({-(-limit // batch)} batch(es) of {batch}); give accuracy.data for real data",
        "random",
        False,
        too_few_asked,
        RAISE_SAMPLES,
        limit,
        random_batches,
    )

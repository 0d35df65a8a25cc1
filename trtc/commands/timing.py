"""Where a build's wall time goes, phase by phase, so the next bottleneck is visible (the
report's `build.phases`; benchmarks/build_overhead.py tabulates it).

Phases of the main thread add up to the build's time after the CLI started it; work done beside
TensorRT's build in another thread is kept apart (`beside`), since it overlaps `tensorrt`. A
phase's named parts (`parts`: calibration within precision) are inside its time, not added to it."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.beside: dict[str, float] = {}
        self.parts: dict[str, dict[str, float]] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def add_part(self, phase: str, name: str, seconds: float) -> None:
        self.parts.setdefault(phase, {})[name] = seconds

    def as_dict(self) -> dict:
        return {
            "main": {name: round(s, 4) for name, s in self.seconds.items()},
            "beside_tensorrt": {name: round(s, 4) for name, s in self.beside.items()},
            "parts": {phase: {name: round(s, 4) for name, s in parts.items()} for phase, parts in self.parts.items()},
        }

"""The validated build spec as immutable objects. Paths are absolute; sizes are bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeRange:
    """The min/opt/max shapes of one input in one optimization profile."""

    min: Shape
    opt: Shape
    max: Shape
    values: ShapeRange | None = None  # a shape-tensor input's min/opt/max values (flattened)

    def as_dict(self) -> dict[str, list[int]]:
        shapes = {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}
        return shapes if self.values is None else {**shapes, "values": self.values.as_dict()}


@dataclass(frozen=True)
class InputSettings:
    """What the spec says about one input beyond its shapes: a pinned value or a value range."""

    value: Any = None
    value_range: tuple[float, float] | None = None
    shape_values: ShapeRange | None = None  # min/opt/max values of a shape-tensor input


@dataclass(frozen=True)
class TargetSpec:
    backend: str = "auto"
    compute_capabilities: tuple[str, ...] = ()
    optimization_level: int | None = None
    timing_cache: Path | None = None
    gpu: str | None = None


@dataclass(frozen=True)
class PrecisionSpec:
    mode: str = "fp32"
    fallback: str | None = None
    keep_fp32: tuple[str, ...] = ()
    keep_io_types: bool = True
    auto_fallback: bool = False
    calibration: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputPaths:
    plan: Path
    report: Path
    onnx: Path | None = None

    @property
    def markdown(self) -> Path:
        return self.report.with_name(_stem_of_report(self.report) + ".report.md")

    @property
    def html(self) -> Path:
        return self.report.with_name(_stem_of_report(self.report) + ".report.html")

    @property
    def log(self) -> Path:
        return self.report.with_name(_stem_of_report(self.report) + ".build.log")

    def all_files(self) -> list[Path]:
        files = [self.plan, self.report, self.markdown, self.html, self.log]
        return files + ([self.onnx] if self.onnx else [])


def _stem_of_report(report: Path) -> str:
    name = report.name
    for suffix in (".report.json", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return report.stem


@dataclass(frozen=True)
class Spec:
    """One engine to build. `document` is the spec as validated (after --set), for fingerprints."""

    name: str
    source: Path | None
    model: Path
    outputs: tuple[str, ...]
    max_batch: int | None
    profiles: tuple[dict[str, ShapeRange], ...]
    input_settings: dict[str, InputSettings]
    workspace: int | None
    precision: PrecisionSpec
    accuracy: dict[str, Any]
    fusion: dict[str, Any]
    target: TargetSpec
    output: OutputPaths
    document: dict[str, Any]
    plugins: tuple[Path, ...] = ()  # plugin libraries, loaded before TensorRT parses the model

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps(self.document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

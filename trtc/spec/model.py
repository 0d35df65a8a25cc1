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


# The defaults below are the schema's (trtc/spec/schema.py documents them; tests/spec/test_schema.py
# holds the two equal): consumers read them here, never write them again.


@dataclass(frozen=True)
class TargetSpec:
    backend: str = "auto"
    compute_capabilities: tuple[str, ...] = ()
    optimization_level: int | None = None
    timing_cache: Path | None = None
    gpu: str | None = None


@dataclass(frozen=True)
class CalibrationSpec:
    """`precision.calibration`: where INT8/FP8 activation ranges come from."""

    data: str | None = None  # a folder, python:module:function or "random", relative to the spec's folder
    # Measured on YOLOv8n, MobileNetV3 and PP-OCRv4 det (benchmarks/real_int8.py): mse ranges, with the
    # last three quantized layers before an output unclipped, meet all three accuracy goals; minmax
    # everywhere missed PP-OCRv4 det's, mse everywhere YOLOv8n's.
    method: str = "mse"
    percentile: float = 99.99
    equalize: bool = True
    migrate: bool = True  # precision/migrate.py
    split_concat: bool = True  # precision/concat_split.py
    unclipped_near_outputs: int = 2
    bias_correction: bool = True
    samples: int = 512
    batch: int = 16
    cache: str | None = None  # relative to the spec's folder
    preprocess: dict[str, Any] | None = None  # how image files become inputs (trtc/precision/images.py)

    @property
    def real_data(self) -> str | None:
        """The user's samples (a folder or a generator); None for random inputs or no data."""
        return None if self.data in (None, "random") else self.data


@dataclass(frozen=True)
class PrecisionSpec:
    mode: str = "fp32"
    fallback: str = "fp16"  # int8/fp8: the precision of the layers that are not quantized
    keep_fp32: tuple[str, ...] = ()
    keep_io_types: bool = True
    auto_fallback: bool = False
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)


@dataclass(frozen=True)
class AccuracySpec:
    """`accuracy`: the samples reduced precision is measured on, and the gates it must pass."""

    data: str | None = None
    samples: int = 64
    min_cosine: float | None = None
    max_rel_l2: float | None = None
    min_top1_agreement: float | None = None

    @property
    def gates(self) -> dict[str, float]:
        """The gates set, by key."""
        return {
            key: getattr(self, key)
            for key in ("min_cosine", "max_rel_l2", "min_top1_agreement")
            if getattr(self, key) is not None
        }


@dataclass(frozen=True)
class FusionSpec:
    """`fusion`: the graph passes and how their changes are verified."""

    passes: str | tuple[str, ...] = "default"  # "default", "none" or pass names
    disable: tuple[str, ...] = ()
    verify: str = "on"  # on | off | strict | full


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
    accuracy: AccuracySpec
    fusion: FusionSpec
    target: TargetSpec
    output: OutputPaths
    document: dict[str, Any]
    plugins: tuple[Path, ...] = ()  # plugin libraries, loaded before TensorRT parses the model

    @property
    def value_ranges(self) -> dict[str, tuple[float, float]]:
        """Input name -> [low, high] of the random values trtc feeds it (`inputs.<name>.range`)."""
        return {name: setting.value_range for name, setting in self.input_settings.items() if setting.value_range}

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps(self.document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

"""The build spec: schema, loading with overrides, and the validated model."""

from trtc.spec.load import load_spec, parse_size
from trtc.spec.model import OutputPaths, PrecisionSpec, ShapeRange, Spec, TargetSpec
from trtc.spec.preflight import preflight
from trtc.spec.schema import spec_schema

__all__ = [
    "load_spec",
    "parse_size",
    "preflight",
    "spec_schema",
    "Spec",
    "ShapeRange",
    "TargetSpec",
    "PrecisionSpec",
    "OutputPaths",
]

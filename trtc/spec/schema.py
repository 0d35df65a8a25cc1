"""The JSON Schema of a build spec: the single source of truth for validation and `trtc schema`.

`x-expected` (ignored by validators and editors) words what a oneOf field accepts, for messages.
"""

from __future__ import annotations

import copy

SCHEMA_ID = "https://trtc.dev/schema/spec-1.json"

_SHAPE = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0},
    "description": "A concrete shape, one integer per dimension.",
}

_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "description": "Shape range (min/opt/max), a fixed shape, or a pinned value for one input.",
    "properties": {
        "min": _SHAPE,
        "opt": _SHAPE,
        "max": _SHAPE,
        "shape": {**_SHAPE, "description": "Fixed shape: min = opt = max."},
        "value": {
            "description": "Freeze the input to this constant; it disappears from the engine.",
            "x-expected": "a number, a list or a boolean",
            "oneOf": [{"type": "number"}, {"type": "array"}, {"type": "boolean"}],
        },
        "range": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 2,
            "maxItems": 2,
            "description": "[low, high] of values drawn for this input when trtc runs the model itself.",
        },
    },
}

_INPUT_MAP = {
    "type": "object",
    "description": "Input name -> its shape range.",
    "additionalProperties": _INPUT,
}

_SIZE = {
    "description": "A size in bytes, or a string with a unit: 512MiB, 2GiB, 64MB.",
    "x-expected": "a size in bytes or with a unit, like 512MiB or 2GiB",
    "oneOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)?\s*$"},
    ],
}

PRECISION_MODES = ["fp32", "fp16", "bf16", "int8", "fp8"]
CALIBRATION_METHODS = ["minmax", "entropy", "percentile"]
BACKENDS = ["auto", "tensorrt", "tensorrt-rtx"]

_CALIBRATION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "data": {"type": "string", "description": "Folder of .npy/.npz or images, or module:function."},
        "method": {"enum": CALIBRATION_METHODS, "default": "minmax"},
        "percentile": {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "default": 99.99},
        "samples": {"type": "integer", "minimum": 1, "default": 512},
        "batch": {"type": "integer", "minimum": 1, "default": 16},
        "cache": {"type": "string", "description": "JSON calibration cache path."},
        "preprocess": {"type": "object", "description": "Image preprocessing (resize, crop, mean, std, layout, channels)."},
    },
}

_PRECISION = {
    "description": "Precision of the engine: a mode name, or an object with mode and its settings.",
    "x-expected": "a precision mode (fp32, fp16, bf16, int8, fp8) or a mapping with 'mode'",
    "oneOf": [
        {"enum": PRECISION_MODES},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["mode"],
            "properties": {
                "mode": {"enum": PRECISION_MODES, "default": "fp32"},
                "fallback": {"enum": ["fp32", "fp16", "bf16"], "description": "Precision of what is not quantized."},
                "keep_fp32": {"type": "array", "items": {"type": "string"}, "description": "Node-name globs or op types kept in FP32."},
                "keep_io_types": {"type": "boolean", "default": True},
                "auto_fallback": {"type": "boolean", "default": False},
                "calibration": _CALIBRATION,
            },
        },
    ],
}

_ACCURACY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "data": {"type": "string"},
        "samples": {"type": "integer", "minimum": 1, "default": 64},
        "min_cosine": {"type": "number", "minimum": -1, "maximum": 1},
        "max_rel_l2": {"type": "number", "minimum": 0},
        "min_top1_agreement": {"type": "number", "minimum": 0, "maximum": 1},
    },
}

_FUSION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "passes": {
            "description": "'default', 'none', or an explicit list of pass names.",
            "x-expected": "'default', 'none' or a list of pass names",
            "oneOf": [{"enum": ["default", "none"]}, {"type": "array", "items": {"type": "string"}}],
        },
        "disable": {"type": "array", "items": {"type": "string"}, "description": "Pass names to switch off."},
        "verify": {"enum": ["on", "off", "strict", "full"], "default": "on"},
    },
}

_TARGET = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "backend": {"enum": BACKENDS, "default": "auto", "description": "auto prefers tensorrt when importable."},
        "compute_capabilities": {
            "type": "array",
            "items": {"oneOf": [{"type": "number"}, {"type": "string"}]},
            "description": "TensorRT-RTX ahead-of-time targets, e.g. [8.9, 12.0].",
        },
        "optimization_level": {"type": "integer", "minimum": 0, "maximum": 5},
        "timing_cache": {"type": "string", "description": "Timing cache file, read and updated."},
        "gpu": {"type": "string", "description": "GPU name for cost estimates, e.g. 'RTX 4090'."},
    },
}

_OUTPUT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "plan": {"type": "string", "description": "Plan file; default build/<name>.plan beside the spec."},
        "report": {"type": "string", "description": "JSON report; the .md report and .log sit beside it."},
        "onnx": {"type": "string", "description": "Save the graph trtc handed to TensorRT."},
    },
}

SPEC_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "trtc build spec",
    "type": "object",
    "additionalProperties": False,
    "required": ["model"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$", "description": "Engine name; default: the spec file's stem."},
        "model": {"type": "string", "description": "ONNX file, relative to the spec's folder."},
        "outputs": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
        "max_batch": {"type": "integer", "minimum": 1},
        "inputs": _INPUT_MAP,
        "profiles": {"type": "array", "items": _INPUT_MAP, "minItems": 1},
        "workspace": _SIZE,
        "precision": _PRECISION,
        "accuracy": _ACCURACY,
        "fusion": _FUSION,
        "target": _TARGET,
        "output": _OUTPUT,
    },
}


def spec_schema() -> dict:
    """A copy the caller may change."""
    return copy.deepcopy(SPEC_SCHEMA)

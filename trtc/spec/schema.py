"""The JSON Schema of a build spec: the single source of truth for validation and `trtc schema`.

`x-expected` (ignored by validators and editors) words what a oneOf field accepts, for messages.
"""

from __future__ import annotations

import copy

from trtc.spec.schema_precision import ACCURACY, PRECISION

SCHEMA_ID = "https://trtc.dev/schema/spec-1.json"
# Names the spec may use, checked with the rest of the spec (file:line, did-you-mean) before the
# model loads; tests/spec/test_schema.py holds them equal to the pass registry and gpus.json.
PASS_NAMES = ["remove-noops", "fold-constants", "fold-batchnorm", "fold-bias", "merge-siblings"]
GPU_NAMES = ["RTX 3090", "RTX 4090", "RTX 5090", "A100", "H100", "L4"]
_DIM_MAX = 2**31 - 1  # TensorRT's dimensions are 32-bit in its ONNX parser's profiles
_INT64_MAX = 2**63 - 1
WORKSPACE_MAX = 2**50  # 1024 TiB; TensorRT-RTX 1.7 fails an internal assertion near 2^63

_SHAPE = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0, "maximum": _DIM_MAX},
    "description": "A concrete shape, one integer per dimension.",
}

_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "description": "One input: its shape range (min/opt/max) or fixed shape, a pinned value, or the range of the random values trtc feeds "
    "it.",
    "properties": {
        "min": {**_SHAPE, "description": "Smallest shape the engine accepts (the profile's minimum)."},
        "opt": {**_SHAPE, "description": "Shape TensorRT tunes kernels for; default: max."},
        "max": {**_SHAPE, "description": "Largest shape the engine accepts (the profile's maximum)."},
        "shape": {
            **_SHAPE,
            "description": "Fixed shape: min = opt = max. Give either shape or min/opt/max.",
            "examples": [[1, 3, 224, 224]],
        },
        "value": {
            "description": "Freeze the input to this constant (reshaped to the input's declared shape): it disappears from the "
            "engine, constants fold through it and every If whose condition becomes constant is replaced by its branch.",
            "examples": [16000, True, [1, 2]],
            "x-expected": "a number, a list or a boolean",
            "oneOf": [{"type": "number"}, {"type": "array"}, {"type": "boolean"}],
        },
        "values": {
            "type": "object",
            "additionalProperties": False,
            "required": ["min", "max"],
            "description": "A shape-tensor input (its values are a shape, e.g. a Reshape's target): min/opt/max values, one integer per "
            "element; opt defaults to max.",
            "properties": {
                k: {
                    "type": "array",
                    "items": {"type": "integer", "minimum": -_INT64_MAX, "maximum": _INT64_MAX},
                    "description": f"The {k} values, one per element.",
                }
                for k in ("min", "opt", "max")
            },
        },
        "range": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 2,
            "maxItems": 2,
            "description": "[low, high] of the random values trtc draws for this input when it runs the model itself (pass "
            "verification, FP16 range checks, random calibration or accuracy data). Use it for inputs that "
            "must stay in a range, such as indices.",
            "examples": [[0, 999]],
        },
    },
}

_INPUT_MAP = {
    "type": "object",
    "description": "Input name -> its settings. Inputs whose dimensions are all static need no entry; every dynamic "
    "dimension needs a range here or from max_batch.",
    "examples": [
        {"images": {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [32, 3, 224, 224]}, "sr": {"value": 16000}}
    ],
    "additionalProperties": _INPUT,
}

_SIZE = {
    "description": "A size in bytes, or a string with a unit: 512MiB, 2GiB, 64MB.",
    "examples": ["256MiB", "2GiB", 1073741824],
    "x-expected": "a size in bytes or with a unit, like 512MiB or 2GiB",
    "oneOf": [
        {"type": "integer", "minimum": 1, "maximum": WORKSPACE_MAX},
        {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)?\s*$"},
    ],
}

BACKENDS = ["auto", "tensorrt", "tensorrt-rtx"]

_FUSION = {
    "type": "object",
    "additionalProperties": False,
    "description": "The graph passes trtc runs before TensorRT sees the model, and how their changes are verified.",
    "properties": {
        "passes": {
            "description": "default (all, in this order), none, or a list of pass names: remove-noops, fold-constants, "
            "fold-batchnorm, fold-bias, merge-siblings.",
            "default": "default",
            "examples": [["remove-noops", "fold-batchnorm"]],
            "x-expected": "'default', 'none' or a list of pass names",
            "oneOf": [{"enum": ["default", "none"]}, {"type": "array", "items": {"enum": PASS_NAMES}}],
        },
        "disable": {
            "type": "array",
            "items": {"enum": PASS_NAMES},
            "description": "Pass names to switch off.",
            "examples": [["merge-siblings"]],
        },
        "verify": {
            "enum": ["on", "off", "strict", "full"],
            "default": "on",
            "description": "Original and rewritten graphs run in onnxruntime on random inputs (min shape of every profile, opt "
            "too within a time budget). on: a change that alters an output is dropped with a warning; strict: it "
            "fails the build (exit 1); full: like on, also at opt and max shapes; off: no check.",
        },
    },
}

_TARGET = {
    "type": "object",
    "additionalProperties": False,
    "description": "Which TensorRT builds the engine and for which GPUs.",
    "properties": {
        "backend": {
            "enum": BACKENDS,
            "default": "auto",
            "description": "auto uses tensorrt (full TensorRT) when it is importable, else tensorrt-rtx.",
        },
        "compute_capabilities": {
            "type": "array",
            "items": {
                "oneOf": [{"type": "number"}, {"type": "string"}],
                "x-expected": "a compute capability like 8.9 or '12.0'",
            },
            "description": "GPU architectures TensorRT-RTX builds ahead of time for (1.7 supports 7.5, 8.0, 8.6, 8.9, 12.0, "
            "12.1; sm_89 is accepted too). Default: TensorRT-RTX's portable set. Full TensorRT builds for the "
            "GPU it runs on and refuses this key.",
            "examples": [[8.9], [8.6, 12.0], ["sm_89"]],
        },
        "optimization_level": {
            "type": "integer",
            "minimum": 0,
            "maximum": 5,
            "description": "TensorRT's builder optimization level: higher tries more tactics and builds "
            "slower. Default: TensorRT's own (3).",
        },
        "timing_cache": {
            "type": "string",
            "description": "Timing cache file (relative to the spec's folder), read when it exists "
            "and written after a build.",
        },
        "gpu": {
            "enum": GPU_NAMES,
            "description": "GPU whose peak compute and bandwidth drive the report's roofline estimate: RTX 3090, RTX 4090, "
            "RTX 5090, A100, H100 or L4. Default: the GPU of the first compute capability.",
            "examples": ["RTX 4090"],
        },
    },
}

_OUTPUT = {
    "type": "object",
    "additionalProperties": False,
    "description": "Where the build writes, relative to the spec's folder. All files are written together or not at all.",
    "properties": {
        "plan": {
            "type": "string",
            "description": "The serialized engine. Default: build/<name>.plan beside the spec.",
            "examples": ["build/demo.plan"],
        },
        "report": {
            "type": "string",
            "description": "The JSON report; <stem>.report.md and <stem>.build.log are written beside it. Default: "
            "build/<name>.report.json beside the spec.",
            "examples": ["build/demo.report.json"],
        },
        "onnx": {
            "type": "string",
            "description": "Also save the ONNX graph trtc handed to TensorRT (after passes, pinning "
            "and precision). Default: not saved.",
        },
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
        "name": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9_.-]+$",
            "x-expected": "a name of letters, digits, '_', '.' and '-'",
            "description": "Engine name, used in default output paths. Default: the spec file's name without .yaml.",
        },
        "model": {
            "type": "string",
            "description": "The ONNX model, relative to the spec's folder (to the current folder when set with --set). "
            "External data files are read from beside it.",
            "examples": ["../models/demo.onnx"],
        },
        "outputs": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "uniqueItems": True,
            "description": "Tensors the engine outputs, in place of the model's own outputs: any tensor may be named, "
            "and nodes that feed none of them are pruned. Default: the model's outputs.",
            "examples": [["head0.out", "softmax.out"]],
        },
        "max_batch": {
            "type": "integer",
            "minimum": 1,
            "maximum": _DIM_MAX,
            "description": "Each input's batch dimension gets the range min 1, opt and max max_batch. The batch "
            "dimension is found by name (batch, batch_size, N, ... wherever it sits), else it is a "
            "dynamic first dimension not named as something else (seq, time, height, ...). Other dynamic dimensions "
            "still need inputs.",
            "examples": [32],
        },
        "inputs": _INPUT_MAP,
        "profiles": {
            "type": "array",
            "items": _INPUT_MAP,
            "minItems": 1,
            "description": "Several optimization profiles, each a map of input name -> min/opt/max or shape. Shapes "
            "then belong here, not in inputs (value and range stay in inputs).",
            "examples": [
                [
                    {"images": {"shape": [1, 3, 224, 224]}},
                    {"images": {"min": [8, 3, 224, 224], "max": [32, 3, 224, 224]}},
                ]
            ],
        },
        "plugins": {
            "type": "array",
            "items": {"type": "string"},
            "uniqueItems": True,
            "description": "TensorRT plugin libraries (.so, .dll; relative to the spec's folder) loaded into TensorRT's "
            "plugin registry before the model is parsed, for nodes TensorRT has no importer for. Each must "
            "export TensorRT's plugin entry points (setLoggerFinder, getCreators).",
            "examples": [["plugins/libmy_nms.so"]],
        },
        "workspace": {
            **_SIZE,
            "description": "Limit of the builder's workspace memory pool: a size in bytes or with a "
            "unit (512MiB, 2GiB, 64MB). Default: TensorRT's own.",
        },
        "precision": PRECISION,
        "accuracy": ACCURACY,
        "fusion": _FUSION,
        "target": _TARGET,
        "output": _OUTPUT,
    },
}


def spec_schema() -> dict:
    """A copy the caller may change."""
    return copy.deepcopy(SPEC_SCHEMA)

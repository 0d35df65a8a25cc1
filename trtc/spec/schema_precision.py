"""The precision and accuracy parts of the spec's JSON Schema (trtc/spec/schema.py holds the
rest): the mode, calibration, fallback and FP32 keeps, and the accuracy data and gates."""

from __future__ import annotations

PRECISION_MODES = ["fp32", "fp16", "bf16", "int8", "fp8"]
CALIBRATION_METHODS = ["minmax", "entropy", "percentile", "mse"]

CALIBRATION = {
    "type": "object",
    "description": "Where int8/fp8 activation ranges come from (weights are quantized per channel from their own values).",
    "additionalProperties": False,
    "properties": {
        "data": {
            "type": "string",
            "description": "Calibration samples, relative to the spec's folder: a folder of .npy files (single-input models; one "
            "sample or a batch per file), of .npz files (arrays named by input) or of images (with preprocess); "
            "python:module:function, a generator yielding dicts of arrays (runs your code; the module is looked "
            "up in the spec's folder too); or random, for smoke tests only.",
            "examples": ["calib/", "python:calib_data:samples", "random"],
        },
        "method": {
            "enum": CALIBRATION_METHODS,
            "default": "mse",
            "description": "How an activation's range is chosen: minmax takes the largest |value| seen; entropy picks the clip "
            "threshold that keeps the quantized histogram closest (KL divergence) to the real one; percentile clips "
            "at the given percentile of |value|; mse picks the threshold with the least mean squared "
            "quantization error (rounding plus clipping).",
        },
        "percentile": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 100,
            "default": 99.99,
            "description": "Percentile of |value| kept by the percentile method.",
        },
        "equalize": {
            "type": "boolean",
            "default": True,
            "description": "Scale the channels of a depthwise convolution's input to one range (the inverse goes into its "
            "per-channel weights), so quiet channels keep their INT8 precision.",
        },
        "migrate": {
            "type": "boolean",
            "default": True,
            "description": "Move part of the channel ranges of a dense Conv/Gemm/MatMul layer's input into its weights "
            "(SmoothQuant-style), as strongly as measured best per input on the first 8 calibration samples "
            "(one more run of those), so quiet channels keep more INT8 levels.",
        },
        "split_concat": {
            "type": "boolean",
            "default": True,
            "description": "Split a convolution that reads a Concat of branches whose ranges differ 16x or more (a "
            "detector head's box coordinates beside its class scores) into one convolution per branch, "
            "added up, so each branch is quantized with its own scale.",
        },
        "unclipped_near_outputs": {
            "type": "integer",
            "minimum": -1,
            "default": 2,
            "description": "With a clipping method, the inputs of quantized layers that reach a model output "
            "through at most this many further quantized layers keep their largest |value| "
            "(their rare large values carry the result, e.g. a detection's score); -1: none.",
        },
        "bias_correction": {
            "type": "boolean",
            "default": True,
            "description": "int8: take the mean error quantization adds to each convolution's output channels "
            "(measured on the calibration samples, one more pass) back out of its bias.",
        },
        "samples": {
            "type": "integer",
            "minimum": 1,
            "maximum": 10_000_000,
            "default": 512,
            "description": "Samples used for calibration at most; data is streamed batch by batch, so memory stays flat.",
        },
        "batch": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65536,
            "default": 16,
            "description": "Samples per onnxruntime run during calibration.",
        },
        "cache": {
            "type": "string",
            "description": "JSON file of the calibrated ranges, relative to the spec's folder. Reused when the graph after passes, "
            "the data (file contents; a generator's module and package files), every calibration setting, the "
            "pinned values and value ranges and trtc's version match; recalibrated and rewritten otherwise, or "
            "when the file is not a valid cache (with a warning). The file is an input of the build: editing or "
            "deleting it rebuilds the plan, and --depfile lists it.",
            "examples": ["build/demo.calib.json"],
        },
        "preprocess": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "resize": {
                    "oneOf": [
                        {"type": "integer", "minimum": 1},
                        {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
                    ],
                    "description": "The shorter side in pixels, or [height, width].",
                },
                "crop": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1},
                    "minItems": 2,
                    "maxItems": 2,
                    "description": "[height, width] of the centre crop, after resize.",
                },
                "scale": {"type": "number", "exclusiveMinimum": 0, "default": 255, "description": "Pixel divisor."},
                "mean": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 3,
                    "maxItems": 3,
                    "default": [0, 0, 0],
                    "description": "Per channel, subtracted after scaling.",
                },
                "std": {
                    "type": "array",
                    "items": {"type": "number", "exclusiveMinimum": 0},
                    "minItems": 3,
                    "maxItems": 3,
                    "default": [1, 1, 1],
                    "description": "Per channel, divided by after the mean is subtracted.",
                },
                "layout": {"enum": ["NCHW", "NHWC"], "default": "NCHW", "description": "The input's axis order."},
                "channels": {"enum": ["RGB", "BGR"], "default": "RGB", "description": "The input's channel order."},
            },
            "description": "How image files become inputs: resize (shorter side, or [height, width]), crop ([height, width], "
            "centre), scale (pixel divisor, default 255), mean, std, layout (NCHW or NHWC), channels (RGB or BGR). "
            "Without resize or crop, images are resized to the model's static spatial size.",
            "examples": [
                {"resize": 256, "crop": [224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
            ],
        },
    },
}

PRECISION = {
    "description": "Precision of the engine: a mode name, or a mapping with mode and its settings. TensorRT is strongly "
    "typed, so trtc converts the ONNX graph: fp16/bf16 by autocast (numerically risky ops and values stay "
    "FP32), int8/fp8 by calibrated Q/DQ at the layers TensorRT fuses them into. Default: fp32.",
    "examples": ["fp16", {"mode": "int8", "calibration": {"data": "calib/"}}],
    "x-expected": "a precision mode (fp32, fp16, bf16, int8, fp8) or a mapping with 'mode'",
    "oneOf": [
        {"enum": PRECISION_MODES},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["mode"],
            "properties": {
                "mode": {"enum": PRECISION_MODES, "default": "fp32", "description": "The engine's main precision."},
                "fallback": {
                    "enum": ["fp32", "fp16", "bf16"],
                    "default": "fp16",
                    "description": "int8/fp8: precision of the layers that are not quantized. fp16 applies the "
                    "rules of precision: fp16 (layers that overflow FP16 stay FP32).",
                },
                "keep_fp32": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Nodes kept in FP32: node-name globs or op types.",
                    "examples": [["Softmax", "head.*"]],
                },
                "keep_io_types": {
                    "type": "boolean",
                    "default": True,
                    "description": "Keep the engine's float inputs and outputs FP32 (casts inside the engine); false "
                    "gives them the converted type.",
                },
                "auto_fallback": {
                    "type": "boolean",
                    "default": False,
                    "description": "int8/fp8: when an accuracy gate fails, return quantized layers to the fallback "
                    "precision one at a time (at most 16), the most harm per FLOP first (ranked on "
                    "calibration samples), until the gate holds; then quantize again those not needed.",
                },
                "calibration": CALIBRATION,
            },
        },
    ],
}

ACCURACY = {
    "type": "object",
    "additionalProperties": False,
    "description": "With a precision other than fp32, the FP32 and converted graphs run in onnxruntime on the same samples "
    "and the report gets, per output, max abs error, relative L2 error, cosine (pooled, per-sample mean and "
    "worst sample) and top-1 agreement. A gate set here that fails stops the build with exit code 3 and writes "
    "no plan. A figure needs at least 8 samples: with fewer, a gate is a spec error (exit 2) and without one "
    "the accuracy is reported as not measured. Without a gate, a model clearly off FP32 (cosine under 0.99, "
    "or a sample under 0.9) is a warning.",
    "properties": {
        "data": {
            "type": "string",
            "description": "Samples to compare on, in the forms precision.calibration.data takes. Default: for int8/fp8 "
            "every 4th calibration sample, held out of calibration (when that makes 8 or more), else random "
            "inputs at the opt shape.",
            "examples": ["val/"],
        },
        "samples": {
            "type": "integer",
            "minimum": 1,
            "maximum": 10_000_000,
            "default": 64,
            "description": "Samples compared at most.",
        },
        "min_cosine": {
            "type": "number",
            "minimum": -1,
            "maximum": 1,
            "description": "Gate: every output's cosine similarity to FP32 is at least this.",
            "examples": [0.999],
        },
        "max_rel_l2": {
            "type": "number",
            "minimum": 0,
            "description": "Gate: every output's relative L2 error, |converted - fp32| / |fp32|, is at most this.",
            "examples": [0.01],
        },
        "min_top1_agreement": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Gate: for outputs shaped [batch, classes], the share of samples whose arg-max "
            "matches FP32 is at least this.",
            "examples": [0.99],
        },
    },
}

"""`trtc init`: a commented starter spec written from a model's own inputs and outputs.

The text is templated (comments are the point of it), then read back through trtc's own spec
loader and profile resolution before anything is written, so a starter spec that trtc would
refuse is a bug here, never the user's problem.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import yaml

from trtc import __version__
from trtc.commands.remedies import remedies
from trtc.errors import UsageError
from trtc.graph.batch_dim import batch_axes
from trtc.graph.io import load_model, name_unnamed_nodes
from trtc.graph.profiles import ModelInput, model_inputs, resolve_profiles
from trtc.incremental.clashes import refuse_clashes
from trtc.outputs import StagedOutputs
from trtc.printable import one_line
from trtc.spec.docs import schema_text
from trtc.spec.load import spec_from_document
from trtc.spec.model import CalibrationSpec, PrecisionSpec
from trtc.spec.schema_precision import CALIBRATION_METHODS

MAX_BATCH = 32
# Proposed ranges for dynamic dimensions other than the batch: spatial axes of image-like
# (rank-4) inputs, and anything else (sequence lengths and the like). A starting point only.
SCHEMA_FILE = "trtc.schema.json"  # beside the spec; `trtc schema -o` writes it too
_SPATIAL = (32, 224, 640)
_OTHER = (1, 128, 512)
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


@dataclass
class StarterSpec:
    path: Path | None  # None: written to stdout
    text: str
    inputs: list[ModelInput]
    outputs: list[str]
    dynamic: list[str]  # "input dim axis ('name')" for every dynamic dimension that got a proposed range
    model_files: list[Path] = field(default_factory=list)  # the model and its external data
    schema: Path | None = None  # the JSON Schema file written beside the spec, for editors


def starter_spec(model_path: Path, spec_path: Path | None) -> StarterSpec:
    """The spec text for `model_path`, validated; `spec_path` (None: the current folder) is where
    it will live, which decides the relative model path."""
    if not model_path.exists():
        raise UsageError(f"model not found: {model_path} (check the path)")
    if model_path.is_dir():
        raise UsageError(f"expected an ONNX file, got a directory: {model_path}")
    loaded = load_model(model_path)
    model = loaded.proto
    inputs = model_inputs(model)
    folder = spec_path.resolve().parent if spec_path else Path.cwd()
    name = _engine_name(spec_path.stem if spec_path else model_path.stem)
    relative = Path(os.path.relpath(model_path.resolve(), folder)).as_posix()
    file_name = spec_path.name if spec_path else f"{name}.yaml"
    text, dynamic = _render(model, inputs, relative, name, model_path.name, file_name)
    _validate(text, folder / file_name, inputs, model_path)
    return StarterSpec(spec_path, text, inputs, [value.name for value in model.graph.output], dynamic, loaded.files)


def write_starter_spec(model_path: Path, spec_path: Path | None, force: bool) -> StarterSpec:
    """Write the starter spec to `spec_path` (default: <model stem>.yaml in the current folder;
    '-' means stdout, left to the caller). Refuses to overwrite without `force`."""
    if spec_path is None:
        spec_path = Path(f"{model_path.stem}.yaml")
    if str(spec_path) == "-":
        return starter_spec(model_path, None)
    if spec_path.is_dir():
        raise UsageError(
            f"-o {spec_path}: is a directory; name the spec file, e.g. -o {spec_path / (model_path.stem + '.yaml')}"
        )
    if spec_path.exists() and not force:
        raise UsageError(f"{spec_path} already exists; pass --force to overwrite it, or -o to write elsewhere")
    starter = starter_spec(model_path, spec_path)
    files = starter.model_files
    refuse_clashes(
        [("-o", spec_path)], [("the model", files[0])] + [("the model's external data file", f) for f in files[1:]]
    )
    schema = spec_path.resolve().parent / SCHEMA_FILE  # what the spec's first line points editors at
    with StagedOutputs() as staged:
        staged.write(spec_path.resolve(), starter.text)
        if not schema.exists():
            staged.write(schema, schema_text())
            starter.schema = schema
        staged.commit()
    return starter


def _render(
    model: onnx.ModelProto, inputs: list[ModelInput], model_ref: str, name: str, model_name: str, file_name: str
) -> tuple[str, list[str]]:
    batch = {name: found.axis for name, found in batch_axes([(item.name, item.dims) for item in inputs]).items()}
    batched = any(axis is not None for axis in batch.values())
    entries, dynamic = _input_entries(inputs, batch)
    out = [
        f"# yaml-language-server: $schema={SCHEMA_FILE}",
        f"# trtc build spec for {model_name}, written by `trtc init` (trtc {__version__}).",
        f"#   check it without building:  trtc check {shlex.quote(file_name)}",
        f"#   build it:                   trtc build {shlex.quote(file_name)}",
        "# Paths are relative to this file's folder. `trtc schema` prints every key with its description.",
        "",
        "# The ONNX model; external data files are read from beside it.",
        f"model: {_scalar(model_ref)}",
        "",
        "# Engine name, used in the default output file names (default: this file's name).",
        f"# name: {name}",
        "",
        "# Engine outputs: the model's own outputs when this key is absent. Name a subset to prune",
        "# the branches that only feed the others, or any intermediate tensor to expose it.",
        "# outputs:",
        *[f"#   - {_scalar(value.name)}{_pad(value.name)}# {_describe(value)}" for value in model.graph.output],
        "",
    ]
    if batched:
        out += [
            "# Every input's batch dimension (by name, else a dynamic first one) gets the profile min 1, opt = max = max_batch",
            "# (unless inputs: below gives its range).",
            f"max_batch: {MAX_BATCH}",
            "",
        ]
    else:
        out += [
            "# No input has a dynamic batch dimension, so max_batch would have no effect.",
            f"# max_batch: {MAX_BATCH}",
            "",
        ]
    out += [
        "# Inputs: TensorRT builds for every shape between min and max and tunes for opt; the model's",
        "# static dimensions must stay as they are. `shape: [...]` fixes a shape; `value: ...` pins an",
        "# input to a constant (it leaves the engine, and Ifs that depend on it resolve); `range: [lo, hi]`",
        "# bounds the values trtc draws when it runs the model in onnxruntime to verify its rewrites.",
        "# A second profile: move the ranges to `profiles: [{name: {min, opt, max}}, {...}]`.",
    ]
    if any(not commented for commented, _ in entries):
        out.append("inputs:")
        out += [line for commented, lines in entries if not commented for line in lines]
        out += [line for commented, lines in entries if commented for line in lines]
    else:
        out.append("# inputs:")
        out += [line for _, lines in entries for line in lines]
    name_unnamed_nodes(model.graph)  # the names the build and its report give them
    hints = remedies(model)
    if hints:
        out += ["", "# What trtc noticed in this model:", *[f"# {hint}" for hint in hints]]
    out += [
        "",
        "# Workspace TensorRT may use for tactics while building and running.",
        "workspace: 1GiB",
        "",
        "# Precision. TensorRT is strongly typed: the ONNX graph decides, and trtc converts it.",
        "#   fp32: as exported.  fp16 / bf16: converted, with numerically sensitive layers kept in FP32",
        "#   (the report names them and why).  int8 / fp8: Q/DQ placed where TensorRT fuses them, with",
        "#   ranges calibrated on your data; accuracy against FP32 is measured either way.",
        "precision: fp32",
        "# precision: fp16",
        "# precision:",
        "#   mode: int8",
        f"#   fallback: {PrecisionSpec.fallback}             # precision of the layers that are not quantized",
        "#   calibration:",
        "#     data: calib/             # .npy/.npz files (arrays named by input), images, python:module:function, or random",
        f"#     method: {CalibrationSpec.method:<16} # {' | '.join(CALIBRATION_METHODS)}",
        f"#     samples: {CalibrationSpec.samples}",
        f"#     batch: {CalibrationSpec.batch}",
        f"#     cache: build/{name}.calibration.json",
        "# accuracy:                   # gates for reduced precision: a failed gate exits 3, writes no plan, keeps its report",
        "#   min_cosine: 0.999",
        "",
        "# Graph passes trtc runs before TensorRT, each verified in onnxruntime on your model.",
        "# fusion:",
        "#   passes: default            # default | none | a list: remove-noops, fold-constants, fold-batchnorm, ...",
        "#   verify: on                 # on | off | strict (a rewrite that changes outputs is an error) | full",
        "",
        "target:",
        "  backend: auto                # auto | tensorrt | tensorrt-rtx (auto prefers full TensorRT when installed)",
        "  # TensorRT-RTX builds ahead of time for these GPUs: 8.6 (RTX 30), 8.9 (RTX 40), 12.0 (RTX 50);",
        "  # absent, the plan runs on all of them. Full TensorRT builds for the GPU it runs on: leave it out.",
        "  # compute_capabilities: [8.9]",
        "  # optimization_level: 3      # 0..5: higher searches longer for faster kernels",
        "",
        "output:",
        f"  plan: build/{name}.plan",
        f"  report: build/{name}.report.json  # .report.md, .report.html and .build.log are written beside it",
        f"  # onnx: build/{name}.trtc.onnx   # save the graph trtc hands to TensorRT",
    ]
    # Model names and dimension names also sit in comments: on one line each, they stay comments.
    return "\n".join(map(one_line, out)) + "\n", dynamic


def _input_entries(
    inputs: list[ModelInput], batch: dict[str, int | None]
) -> tuple[list[tuple[bool, list[str]]], list[str]]:
    """Per input: whether its entry stays a comment (max_batch or the model fixes its shape), and
    its lines. Dynamic dims that share a name get the same proposal, as TensorRT treats them."""
    entries, dynamic, proposals = [], [], {}
    for item in inputs:
        about = f"{item.dtype} [{', '.join(map(str, item.dims))}]"
        hints = []
        if item.dtype.startswith(("int", "uint", "bool")):
            hints.append("range: [0, 1]   # the values trtc draws for it; set the valid range (e.g. token ids)")
        if not item.dims or all(d == 1 for d in item.dims):
            hints.append("value: ...      # pin it if it is fixed in deployment")
        others = [axis for axis, d in enumerate(item.dims) if isinstance(d, str) and axis != batch[item.name]]
        if not others:
            shape = [d if isinstance(d, int) else 1 for d in item.dims]
            source = "static" if item.is_static else f"dimension {batch[item.name]} from max_batch: 1 .. {MAX_BATCH}"
            lines = [f"  # {_scalar(item.name)}:{_pad(item.name)}# {about}: {source}", *[f"  #   {h}" for h in hints]]
            if not item.is_static:
                high = [MAX_BATCH if axis == batch[item.name] else d for axis, d in enumerate(shape)]
                lines[0] += "; to give its range here instead:"
                lines += [f"  #   min: {shape}", f"  #   opt: {high}", f"  #   max: {high}"]
            entries.append((True, lines))
            continue
        ranges = []  # (min, opt, max) per axis
        for axis, dim in enumerate(item.dims):
            if isinstance(dim, int):
                ranges.append((dim, dim, dim))
            elif axis == batch[item.name]:
                ranges.append((1, MAX_BATCH, MAX_BATCH))
            else:
                key = dim if dim != "?" else (item.name, axis)
                ranges.append(proposals.setdefault(key, _SPATIAL if len(item.dims) == 4 and axis >= 2 else _OTHER))
                dynamic.append(
                    f"{item.name} dimension {axis}"
                    + (f" ('{dim}')" if dim != "?" else "")
                    + f": proposed {' .. '.join(map(str, ranges[-1]))}"
                )
        low, opt, high = ([r[i] for r in ranges] for i in range(3))
        lines = [
            f"  {_scalar(item.name)}:{_pad(item.name)}# {about}; proposed ranges for its dynamic dims: set yours",
            f"    min: {low}",
            f"    opt: {opt}",
            f"    max: {high}",
            *[f"    # {h}" for h in hints],
        ]
        entries.append((False, lines))
    return entries, dynamic


def _validate(text: str, spec_path: Path, inputs: list[ModelInput], model_path: Path) -> None:
    """Read the text back as `trtc build` would: schema, paths and complete profiles; the model's
    path and input names were templated into YAML, so they must read back as themselves."""
    document = yaml.safe_load(text)
    spec = spec_from_document(document, spec_path)
    if spec.model.resolve() != model_path.resolve() or not set(document.get("inputs") or {}) <= {
        item.name for item in inputs
    }:
        raise AssertionError(f"trtc init wrote a spec that does not read back to the model's names:\n{text}")
    resolve_profiles(inputs, spec)


def _describe(value: onnx.ValueInfoProto) -> str:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "unknown type"
    if not tensor.HasField("shape"):
        return dtype
    dims = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    return f"{dtype} [{', '.join(dims)}]"


def _scalar(text: str) -> str:
    """A YAML scalar for a name or path: plain when YAML reads it back as this string (not `.inf`,
    `.5`, `yes`, `null`), else double-quoted with escapes (JSON is valid YAML)."""
    if (
        re.fullmatch(r"[A-Za-z_./][A-Za-z0-9_./-]*", text)
        and text.lower() not in _YAML_WORDS
        and yaml.safe_load(text) == text
    ):
        return text
    return json.dumps(text, ensure_ascii=False)  # JSON's escapes are YAML's; the lines' one_line escapes the rest


def _pad(name: str, width: int = 14) -> str:
    return " " * max(1, width - len(_scalar(name)))


def _engine_name(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_")
    return name or "model"

"""Read a YAML build spec, apply `--set` overrides, validate it and turn it into a `Spec`."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from trtc.errors import SpecError, UsageError
from trtc.inputs import regular_file
from trtc.spec.model import (
    AccuracySpec,
    CalibrationSpec,
    FusionSpec,
    InputSettings,
    OutputPaths,
    PrecisionSpec,
    ShapeRange,
    Spec,
    TargetSpec,
)
from trtc.spec.read_yaml import apply_overrides, parse_yaml, read_text, refuse_non_json_values
from trtc.spec.schema import WORKSPACE_MAX
from trtc.spec.validate import key_path, schema_problems

_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def load_spec(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Spec:
    """Load `path`; `overrides` are `key.path=value` strings whose values parse as YAML."""
    spec_path = Path(path)
    if not spec_path.exists():
        raise UsageError(f"spec file not found: {spec_path} (check the path)")
    if spec_path.is_dir():
        raise UsageError(f"spec path is a directory, not a YAML file: {spec_path}")
    regular_file(spec_path, "spec")  # a FIFO would hang the read
    text = read_text(spec_path)
    document, lines = parse_yaml(text, spec_path)
    return spec_from_document(document, spec_path, overrides, lines)


def spec_from_document(document: Any, spec_path: Path, overrides=(), lines: dict | None = None) -> Spec:
    lines = lines or {}
    if not isinstance(document, dict):
        raise SpecError(f"{spec_path}: expected a mapping of spec keys at the top level (model: ..., precision: ...)")
    document = copy.deepcopy(document)
    if isinstance(document.get("precision"), str):
        document["precision"] = {"mode": document["precision"]}
    overridden = apply_overrides(document, overrides)
    fusion = document.get("fusion")
    if isinstance(fusion, dict) and isinstance(fusion.get("verify"), bool):
        fusion["verify"] = "on" if fusion["verify"] else "off"  # YAML 1.1 reads a bare on/off as a boolean

    def locate(path: tuple) -> str:
        for key in overridden:
            if path[: len(key)] == key or key[: len(path)] == path:
                return f"--set {key_path(key)}"
        for cut in range(len(path), -1, -1):
            if path[:cut] in lines:
                return f"{spec_path}:{lines[path[:cut]]}"
        return str(spec_path)

    refuse_non_json_values(document, (), locate)
    problems = schema_problems(document, locate)
    if problems:
        raise SpecError(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems in {spec_path}",
            problems if len(problems) > 1 else [],
        )
    return _build(document, spec_path, overridden, locate)


def _workspace(doc: dict, locate) -> int | None:
    if "workspace" not in doc:
        return None
    size = parse_size(doc["workspace"])
    if size > WORKSPACE_MAX:  # TensorRT-RTX fails an internal assertion near 2^63
        raise SpecError(
            f"{locate(('workspace',))}: workspace: {doc['workspace']} is {size:,} bytes, more than TensorRT can take; "
            "give at most 1024TiB (a GPU's memory is far less: 2GiB is typical)"
        )
    return size


def parse_size(text: str | int) -> int:
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").upper()])


def _build(doc: dict, spec_path: Path, overridden: list[tuple], locate) -> Spec:
    folder = spec_path.resolve().parent

    def resolve(key: tuple, value: str | None) -> Path | None:
        if value is None:
            return None
        base = Path.cwd() if key in overridden else folder
        return (base / os.path.expanduser(value)).resolve()

    name = doc.get("name") or spec_path.stem
    model = resolve(("model",), doc["model"])
    if not model.exists():
        raise SpecError(
            f"{locate(('model',))}: model: file not found: {model} (paths are relative to the spec's folder)"
        )
    if model.is_dir():
        raise SpecError(f"{locate(('model',))}: model: expected an ONNX file, got a directory: {model}")

    plugins = tuple(resolve(("plugins",), path) for path in doc.get("plugins", []))
    for index, path in enumerate(plugins):
        if not path.is_file():
            raise SpecError(
                f"{locate(('plugins', index))}: plugins[{index}]: plugin library not found: {path} "
                "(paths are relative to the spec's folder)"
            )

    output = doc.get("output", {})
    plan = resolve(("output", "plan"), output.get("plan")) or folder / "build" / f"{name}.plan"
    report = resolve(("output", "report"), output.get("report")) or folder / "build" / f"{name}.report.json"
    paths = OutputPaths(plan=plan, report=report, onnx=resolve(("output", "onnx"), output.get("onnx")))
    _check_output_paths(paths, model, locate)

    target_doc = doc.get("target", {})
    target = _settings(
        TargetSpec,
        target_doc,
        compute_capabilities=tuple(
            _capability(c, locate(("target", "compute_capabilities")))
            for c in target_doc.get("compute_capabilities", [])
        ),
        timing_cache=resolve(("target", "timing_cache"), target_doc.get("timing_cache")),
    )
    precision_doc = doc.get("precision", {})
    precision = _settings(
        PrecisionSpec, precision_doc, calibration=_settings(CalibrationSpec, precision_doc.get("calibration", {}))
    )
    profiles, settings = _profiles(doc, locate)
    return Spec(
        name=name,
        source=spec_path.resolve(),
        model=model,
        outputs=tuple(doc.get("outputs", [])),
        max_batch=doc.get("max_batch"),
        profiles=profiles,
        input_settings=settings,
        workspace=_workspace(doc, locate),
        precision=precision,
        accuracy=_settings(AccuracySpec, doc.get("accuracy", {})),
        fusion=_settings(FusionSpec, doc.get("fusion", {})),
        target=target,
        output=paths,
        document=doc,
        plugins=plugins,
    )


def _settings(kind, block: dict, **converted):
    """One block of the validated spec as its dataclass: the keys it gives (lists as tuples,
    `converted` where the loader converts a value), the dataclass's defaults for the rest. The
    schema allows no other keys."""
    given = {key: tuple(value) if isinstance(value, list) else value for key, value in block.items()}
    return kind(**{**given, **{key: value for key, value in converted.items() if key in block}})


def _profiles(doc: dict, locate) -> tuple[tuple[dict[str, ShapeRange], ...], dict[str, InputSettings]]:
    inputs = doc.get("inputs", {})
    settings = {
        name: InputSettings(
            value=entry.get("value"),
            value_range=tuple(entry["range"]) if "range" in entry else None,
            shape_values=_shape_values(entry["values"], ("inputs", name, "values"), locate)
            if "values" in entry
            else None,
        )
        for name, entry in inputs.items()
        if "value" in entry or "range" in entry or "values" in entry
    }
    for name, entry in inputs.items():
        if "value" in entry and "values" in entry:
            raise SpecError(
                f"{locate(('inputs', name))}: inputs.{name}: give a pinned 'value' or shape-tensor 'values', not both"
            )
    shaped_inputs = {name: entry for name, entry in inputs.items() if set(entry) & {"min", "opt", "max", "shape"}}
    if "profiles" in doc and shaped_inputs:
        first = next(iter(shaped_inputs))
        raise SpecError(
            f"{locate(('inputs', first))}: inputs.{first}: shapes belong in 'profiles' when 'profiles' is given; move them there"
        )
    if "profiles" in doc:
        profile_docs = [(("profiles", index), profile) for index, profile in enumerate(doc["profiles"])]
    else:
        profile_docs = [(("inputs",), shaped_inputs)] if shaped_inputs else []
    profiles = []
    for base, profile in profile_docs:
        ranges = {}
        for name, entry in profile.items():
            where = base + (name,)
            if base[0] == "profiles" and set(entry) & {"value", "values", "range"}:
                raise SpecError(
                    f"{locate(where)}: {key_path(where)}: 'value', 'values' and 'range' belong under inputs: (they hold for every profile)"
                )
            if "value" in entry and set(entry) & {"min", "opt", "max", "shape"}:
                raise SpecError(f"{locate(where)}: {key_path(where)}: a pinned 'value' cannot also have shapes")
            if set(entry) & {"min", "opt", "max", "shape"}:
                ranges[name] = _shape_range(entry, where, locate)
        profiles.append(ranges)
    return tuple(profiles), settings


def _shape_range(entry: dict, where: tuple, locate) -> ShapeRange:
    label = f"{locate(where)}: {key_path(where)}"
    if "shape" in entry:
        if set(entry) & {"min", "opt", "max"}:
            raise SpecError(f"{label}: give either 'shape' or 'min'/'opt'/'max', not both")
        fixed = tuple(entry["shape"])
        return ShapeRange(fixed, fixed, fixed)
    missing = [k for k in ("min", "max") if k not in entry]
    if missing:
        raise SpecError(f"{label}: missing '{missing[0]}' (a range needs min and max; opt defaults to max)")
    low, high = tuple(entry["min"]), tuple(entry["max"])
    opt = tuple(entry.get("opt", high))
    if not len(low) == len(opt) == len(high):
        raise SpecError(
            f"{label}: min, opt and max must have the same rank; got {list(low)}, {list(opt)}, {list(high)}"
        )
    for axis, (a, b, c) in enumerate(zip(low, opt, high)):
        if not a <= b <= c:
            raise SpecError(f"{label}: dimension {axis} must satisfy min <= opt <= max; got {a}, {b}, {c}")
    return ShapeRange(low, opt, high)


def _shape_values(entry: dict, where: tuple, locate) -> ShapeRange:
    low, high = tuple(entry["min"]), tuple(entry["max"])
    opt = tuple(entry.get("opt", high))
    if not len(low) == len(opt) == len(high):
        raise SpecError(
            f"{locate(where)}: {key_path(where)}: min, opt and max must have the same length; got {list(low)}, {list(opt)}, {list(high)}"
        )
    for index, (a, b, c) in enumerate(zip(low, opt, high)):
        if not a <= b <= c:
            raise SpecError(
                f"{locate(where)}: {key_path(where)}: value {index} must satisfy min <= opt <= max; got {a}, {b}, {c}"
            )
    return ShapeRange(low, opt, high)


def _capability(value, where: str) -> str:
    text = str(value).strip().lower().removeprefix("sm_").removeprefix("sm")
    match = re.fullmatch(r"(\d+)\.?(\d)", text)
    if not match:
        raise SpecError(
            f"{where}: target.compute_capabilities: expected a compute capability like 8.9 or 12.0; got {value!r}"
        )
    return f"{int(match.group(1))}.{match.group(2)}"


def _check_output_paths(paths: OutputPaths, model: Path, locate) -> None:
    files = paths.all_files()
    if len(set(files)) != len(files):
        raise SpecError(
            f"{locate(('output',))}: output: two outputs share one path; give the plan and report different names"
        )
    if model in files:
        raise SpecError(f"{locate(('output',))}: output: an output path would overwrite the model {model}")
    for file in files:
        if file.is_dir():
            raise SpecError(f"{locate(('output',))}: output: {file} is a directory; name a file")

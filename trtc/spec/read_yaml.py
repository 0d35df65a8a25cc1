"""Reading a spec's YAML: the text, a parse that keeps each key's line for messages, `--set`
overrides applied to the document, and the values YAML reads that a spec cannot hold."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from trtc.errors import SpecError, UsageError
from trtc.inputs import PLAN_MAGIC
from trtc.spec.validate import key_path


def refuse_non_json_values(value: Any, path: tuple, locate) -> None:
    """YAML reads 2024-01-01 as a date, !!binary as bytes and .nan or .inf as floats; a spec holds none of those."""
    if isinstance(value, dict):
        for key, item in value.items():
            refuse_non_json_values(item, (*path, key), locate)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            refuse_non_json_values(item, (*path, index), locate)
    elif isinstance(value, float) and not math.isfinite(value):  # jsonschema's bounds pass NaN: no comparison fails
        raise SpecError(f"{locate(path)}: {key_path(path)}: YAML read {value} here; write a finite number")
    elif not isinstance(value, (str, int, float, bool)) and value is not None:
        kind = {"date": "a date", "datetime": "a date and time", "bytes": "binary data", "set": "a set"}.get(
            type(value).__name__, type(value).__name__
        )
        raise SpecError(
            f"{locate(path)}: {key_path(path)}: YAML read {kind} here; write a number or a string (quote it)"
        )


def read_text(spec_path: Path) -> str:
    try:
        return spec_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{spec_path}: {_binary_kind(spec_path)}") from None
    except OSError as exc:
        raise UsageError(f"cannot read spec file {spec_path}: {exc.strerror}") from None


def _binary_kind(spec_path: Path) -> str:
    """What a file that is no text is, as the error goes on: the model or the plan are the usual
    wrong arguments."""
    with spec_path.open("rb") as handle:
        magic = handle.read(4)
    if magic in PLAN_MAGIC:
        return "a TensorRT plan, not a build spec; pass the spec it was built from"
    if spec_path.suffix.lower() == ".onnx":
        return f"an ONNX model, not a build spec; `trtc init {spec_path}` writes a spec for it"
    return "not a text file (expected YAML in UTF-8)"


class _SpecLoader(yaml.SafeLoader):
    """YAML as PyYAML's safe loader reads it, except that an exponent without a dot (1e-9) is a
    number, as in YAML 1.2 and JSON: YAML 1.1 made `max_rel_l2: 1e-9` the string '1e-9'."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: str, spec_path: Path) -> tuple[Any, dict[tuple, int]]:
    try:
        document = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader
        root = yaml.compose(text, Loader=_SpecLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{spec_path}:{mark.line + 1}:{mark.column + 1}" if mark else str(spec_path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: YAML does not parse: {problem} (check indentation and quoting)") from None
    if document is None:
        raise SpecError(f"{spec_path}: the spec is empty; it needs at least 'model: path/to/model.onnx'")
    lines: dict[tuple, int] = {}
    _record_lines(root, (), lines)
    return document, lines


def _record_lines(node, path: tuple, lines: dict[tuple, int]) -> None:
    if node is None:
        return
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, path + (index,), lines)


def apply_overrides(document: dict, overrides) -> list[tuple]:
    applied = []
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key.strip() or any(not part for part in key.split(".")):
            raise UsageError(f"--set expects key.path=value, got {override!r} (e.g. --set target.optimization_level=3)")
        try:
            value = yaml.load(raw, Loader=_SpecLoader) if raw.strip() else ""  # noqa: S506 - a SafeLoader
        except yaml.YAMLError:
            value = raw
        parts = key.strip().split(".")
        node = document
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if part == "precision" and depth == 0 and isinstance(child, str):
                child = node[part] = {"mode": child}
            if not isinstance(child, dict):
                raise UsageError(
                    f"--set {key}: '{'.'.join(parts[: depth + 1])}' is not a mapping, so it has no key '{parts[depth + 1]}'"
                )
            node = child
        if parts == ["precision"] and isinstance(value, str):
            value = {**(node.get("precision") or {}), "mode": value}
        node[parts[-1]] = value
        applied.append(tuple(parts))
    return applied

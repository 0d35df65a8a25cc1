"""Parse the layer information TensorRT writes when profiling verbosity is DETAILED.

Two forms carry the same records: the builder's `Layers:` log message (one `Key: value, ...`
line per kernel, then an `I/O Tensors:` section) and the engine inspector's JSON. Both become
`EngineInfo`. No TensorRT import here: the formats are plain text and JSON.
"""

from __future__ import annotations

import json
import re

from trtc.backend.engine_info import Binding, EngineInfo, Kernel, KernelTensor, ProfileShapes

_KEY = re.compile(r"([A-Z][A-Za-z/]*): ?")
_NEXT_KEY = re.compile(r", (?=[A-Z][A-Za-z/]*: )")
_BRACKET = re.compile(r"[\[\]{}]")
_STAGE = re.compile(r"^(After [^:]+|Original): (\d+) layers$")
# Datatype words inside the full-TensorRT "Format/Datatype" field, e.g. "Row major linear FP32".
_FORMAT_TYPES = {
    "FP32": "Float",
    "FP16": "Half",
    "BF16": "BFloat16",
    "Int8": "Int8",
    "INT8": "Int8",
    "FP8": "FP8",
    "Int32": "Int32",
    "Int64": "Int64",
    "Bool": "Bool",
    "UInt8": "UInt8",
}


def parse_builder_log(messages: list[str]) -> EngineInfo | None:
    """Find the `Layers:` message among the builder's log messages and parse it. None if the
    builder did not log one (verbosity below DETAILED, or a backend that does not)."""
    stages = tuple((m.group(1), int(m.group(2))) for m in (_STAGE.match(msg.strip()) for msg in messages) if m)
    for message in reversed(messages):
        if message.lstrip().startswith("Layers:"):
            kernels, bindings = _parse_layers_message(message)
            return EngineInfo(kernels=kernels, bindings=bindings, source="builder-log", optimizer_stages=stages)
    return None


def parse_inspector_json(text: str) -> EngineInfo:
    """Parse `IEngineInspector.get_engine_information(LayerInformationFormat.JSON)` output."""
    document = json.loads(text)
    layers = document.get("Layers", [])
    kernels = tuple(kernel_from_record(layer) for layer in layers if isinstance(layer, dict))
    bindings = tuple(
        Binding(name=str(b), mode="", dtype="", dims=()) for b in document.get("Bindings", []) if isinstance(b, str)
    )
    return EngineInfo(kernels=kernels, bindings=bindings, source="engine-inspector")


def _parse_layers_message(message: str) -> tuple[tuple[Kernel, ...], tuple[Binding, ...]]:
    kernels: list[Kernel] = []
    bindings: list[Binding] = []
    for section, record in _records(message):
        if section == "Layers:":
            kernels.append(kernel_from_record(parse_record(record)))
        elif section == "I/O Tensors:":
            bindings.append(_binding_from_record(parse_record(record)))
    return tuple(kernels), tuple(bindings)


def _records(message: str):
    """(section, record text) per `Name: ...` record. A name with a newline in it (a node's or a
    kernel's) carries its record over several lines: a line that starts no record continues one."""
    section, record = None, None
    for line in message.splitlines():
        stripped = line.strip()
        header = stripped in ("Layers:", "I/O Tensors:", "Engine Metadata:")
        if header or stripped.startswith("Name:"):
            if record is not None:
                yield section, record.rstrip("\n")
            record = None if header else stripped
            section = stripped if header else section
        elif record is not None:
            record += "\n" + line
    if record is not None:
        yield section, record.rstrip("\n")


def parse_record(text: str) -> dict:
    """`Key: value, Key: [ { ... }, ... ], ...` -> dict. Lists of `{...}` become lists of dicts,
    number lists become int lists, everything else stays a string."""
    fields: dict = {}
    pos = 0
    while pos < len(text):
        match = _KEY.match(text, pos)
        if not match:
            break
        key, pos = match.group(1), match.end()
        if key == "Metadata":  # the last key; node names in it may contain anything, `, Key: ` too
            fields[key] = text[pos:]
            break
        if text.startswith("[", pos):
            end = _matching_bracket(text, pos)
            fields[key] = _parse_list(text[pos:end])
            pos = end
        else:
            following = _NEXT_KEY.search(text, pos)
            end = following.start() if following else len(text)
            fields[key] = text[pos:end].strip()
            pos = end
        while pos < len(text) and text[pos] in ", ":
            pos += 1
    return fields


def _matching_bracket(text: str, start: int) -> int:
    depth = 0
    for bracket in _BRACKET.finditer(text, start):  # brackets only: a character loop was 40% of the parse
        if bracket.group() in "[{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return bracket.end()
    return len(text)


def _parse_list(raw: str) -> list:
    inner = raw.strip()[1:-1].strip()
    if not inner:
        return []
    if inner.startswith("{"):
        items, pos = [], 0
        while pos < len(inner):
            start = inner.find("{", pos)
            if start < 0:
                break
            end = _matching_bracket(inner, start)
            items.append(parse_record(inner[start + 1 : end - 1].strip()))
            pos = end
        return items
    values = [part.strip() for part in inner.split(",")]
    try:
        return [int(v) for v in values]
    except ValueError:
        return values


def kernel_from_record(record: dict) -> Kernel:
    """One kernel from a parsed log line or an inspector JSON layer (they share key names)."""
    metadata = record.get("Metadata", "")
    metadata = metadata if isinstance(metadata, str) else ""
    stream = record.get("StreamId", 0)
    return Kernel(
        name=str(record.get("Name", "")),
        layer_type=str(record.get("LayerType", "")),
        inputs=_tensors(record.get("Inputs")),
        outputs=_tensors(record.get("Outputs")),
        constants=_tensors(record.get("Constants")),
        tactic=str(record.get("TacticName", "")),
        stream=int(stream) if str(stream).lstrip("-").isdigit() else 0,
        metadata=metadata,
    )


def _tensors(items) -> tuple[KernelTensor, ...]:
    if not isinstance(items, list):
        return ()
    tensors = []
    for item in items:
        if not isinstance(item, dict):
            continue
        dtype = item.get("Datatype") or _dtype_from_format(str(item.get("Format/Datatype", "")))
        tensor_format = item.get("Format") or item.get("Format/Datatype", "")
        dims = item.get("Dimensions", [])
        tensors.append(
            KernelTensor(
                name=str(item.get("Name", "")),
                dims=tuple(d for d in dims if isinstance(d, int)),
                dtype=str(dtype),
                format=str(tensor_format),
            )
        )
    return tuple(tensors)


def _dtype_from_format(text: str) -> str:
    for word in text.replace("(", " ").replace(")", " ").split():
        if word in _FORMAT_TYPES:
            return _FORMAT_TYPES[word]
    return ""


def _binding_from_record(record: dict) -> Binding:
    profiles = tuple(
        ProfileShapes(tuple(p["MinShape"]), tuple(p["OptShape"]), tuple(p["MaxShape"]))
        for p in record.get("ProfileInfo", []) or []
        if isinstance(p, dict) and {"MinShape", "OptShape", "MaxShape"} <= set(p)
    )
    return Binding(
        name=str(record.get("Name", "")),
        mode=str(record.get("IOMode", "")),
        dtype=str(record.get("DataType", "")),
        dims=tuple(record.get("Dimensions", []) or ()),
        profiles=profiles,
    )

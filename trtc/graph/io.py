"""Reading ONNX models as users have them: external data, unnamed nodes, any tensor as an output."""

from __future__ import annotations

import mmap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from trtc.errors import ModelError, closest
from trtc.graph.file_weights import raw_data_places
from trtc.hashing import HashingBeside, hash_files
from trtc.inputs import PLAN_MAGIC, regular_file


@dataclass
class LoadedModel:
    """A model as read from disk. Its bytes are not kept (a 100 MB model held twice in memory was
    most of trtc's peak above TensorRT's own)."""

    proto: onnx.ModelProto
    sha256: str  # of the file and its external data files, in a stable order
    files: list[Path]  # the file and its external data files
    weight_places: dict[str, tuple[int, int]] | None = None  # initializer -> where its raw data is in the file


def load_model(path: Path, weight_places: bool = False) -> LoadedModel:
    """Load `path` with its external data; every failure names the file and what to do. The
    file is read once: hashed from memory in a thread while protobuf parses it (hashlib lets go
    of the GIL). `weight_places`: also find where each initializer's raw data is in the file
    (a model without external data), for onnxruntime to read them from there."""
    regular_file(path, "model", ModelError)
    with _mapped(path) as raw:
        hashing = HashingBeside(raw)
        try:
            model = _parsed(raw)
        except (DecodeError, RuntimeError, ValueError) as exc:
            what = (
                _other_kind(raw) or f"not a valid ONNX file ({type(exc).__name__}); export it again or check the path"
            )
            raise ModelError(f"model: {path} is {what}") from None
        finally:
            digest = hashing.finish()
        if not model.graph.node and not model.graph.output:
            what = _other_kind(raw)
            raise ModelError(
                f"model: {path} is {what}" if what else f"model: {path} holds no graph (is it an ONNX model?)"
            )
        data_files = external_data_files(model, path)
        places = raw_data_places(raw) if weight_places and not data_files else None
    for data_file in data_files:
        if not data_file.exists():
            raise ModelError(f"model: external data file {data_file} is missing; keep it next to {path.name}")
        regular_file(data_file, "model: external data", ModelError)
    if data_files:
        try:
            external_data_helper.load_external_data_for_model(model, str(path.parent))
        except onnx.checker.ValidationError as exc:  # onnx refuses links there (a path-traversal guard)
            raise ModelError(
                f"model: onnx refuses the external data of {path}: {' '.join(str(exc).split())}; "
                "put a plain copy of the data file beside the model (cp --dereference)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"model: cannot load the external data of {path}: {exc}") from None
    if data_files:
        hash_files(data_files, digest)
    return LoadedModel(proto=model, sha256=digest.hexdigest(), files=[path, *data_files], weight_places=places)


def _other_kind(raw: memoryview | bytes) -> str | None:
    """What the file is when it is recognizably not an ONNX model, as "is ..." completes it: the
    files a build writes beside the model and the spec are what users pass by mistake."""
    head = bytes(raw[:4096])
    text = head.lstrip()
    if head[:4] in PLAN_MAGIC:
        kind = "a TensorRT plan"
    elif text.startswith(b"{") and b'"trtc.report/' in head:
        kind = "a trtc build report"
    elif text[:1] in (b"{", b"["):
        kind = "JSON text"
    elif b"model:" in head and _is_text(head):
        kind = "YAML text (a trtc spec names its model under model:)"
    else:
        return None
    return f"{kind}, not an ONNX model; give the .onnx file"


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not only a character cut at the end of the head
            return False
    return b"\0" not in head


@contextmanager
def _mapped(path: Path) -> Iterator[memoryview | bytes]:
    """The file's bytes, mapped rather than read: protobuf copies what it keeps anyway, so reading
    the file made one more copy of the whole model (0.1 s and 100 MB more on a 100 MB model)."""
    mapping = None
    try:
        with path.open("rb") as file:
            try:
                mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            except (ValueError, OSError):  # an empty file, or a file system that cannot map
                data = file.read()
    except OSError as exc:
        raise ModelError(f"model: cannot read {path}: {exc.strerror}") from None
    if mapping is None:
        yield data
        return
    view = memoryview(mapping)
    try:
        yield view
    finally:
        view.release()
        mapping.close()


def _parsed(data: memoryview | bytes) -> onnx.ModelProto:
    model = onnx.ModelProto()
    if model.ParseFromString(data) not in (None, len(data)):  # as onnx.load_from_string checks
        raise DecodeError("protobuf decoding consumed too few bytes")
    return model


def external_data_files(model: onnx.ModelProto, path: Path) -> list[Path]:
    files: set[Path] = set()
    for tensor in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            info = external_data_helper.ExternalDataInfo(tensor)
            files.add((path.parent / info.location).resolve())
    return sorted(files)


def name_unnamed_nodes(graph: onnx.GraphProto) -> list[str]:
    """Give every unnamed or duplicate-named node a stable name (`<OpType>_<index>`), so that
    TensorRT's layer metadata and the report can refer to each node. Returns the new names."""
    seen: set[str] = set()
    renamed: list[str] = []
    for index, node in enumerate(graph.node):
        if not node.name or node.name in seen:
            base = node.name or f"{node.op_type}_{index}"
            candidate, suffix = base, 1
            while candidate in seen:
                suffix += 1
                candidate = f"{base}__{suffix}"
            node.name = candidate
            renamed.append(candidate)
        seen.add(node.name)
    return renamed


def drop_initializer_inputs(model: onnx.ModelProto) -> int:
    """Old exporters (IR < 4) list every initializer as a graph input as well. TensorRT takes them
    as weights, and so does trtc: they leave the input list, so a pass that folds a weight away
    does not leave an input behind that onnxruntime would then require. Returns how many."""
    graph = model.graph
    real = graph_inputs(graph)
    dropped = len(graph.input) - len(real)
    if dropped:
        kept = [onnx.ValueInfoProto.FromString(value.SerializeToString()) for value in real]
        del graph.input[:]
        graph.input.extend(kept)
        # IR 3 requires every initializer to be an input; IR 4 dropped that rule and nothing else.
        model.ir_version = max(model.ir_version, 4)
    return dropped


def normalize_default_domain(model: onnx.ModelProto) -> int:
    """Write the default domain's alias `ai.onnx` as "" (nodes and opset imports), the spelling
    the graph passes and most tools match; ONNX defines both as the same domain. Returns how
    many nodes changed."""
    changed = 0

    def visit(nodes) -> None:
        nonlocal changed
        for node in nodes:
            if node.domain == "ai.onnx":
                node.domain = ""
                changed += 1
            for attribute in node.attribute:
                for body in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs):
                    visit(body.node)

    visit(model.graph.node)
    for function in model.functions:
        visit(function.node)
    imports = list(model.opset_import)
    if any(op.domain == "ai.onnx" for op in imports):
        has_default = any(op.domain == "" for op in imports)
        del model.opset_import[:]
        for op in imports:
            if op.domain == "ai.onnx":
                if has_default:
                    continue
                op.domain = ""
            model.opset_import.append(op)
    return changed


def select_outputs(model: onnx.ModelProto, names: tuple[str, ...]) -> list[str]:
    """Make `names` the graph outputs (any tensor may be named) and drop nodes that no longer
    contribute. Returns the names of the removed nodes."""
    graph = model.graph
    produced = {out for node in graph.node for out in node.output if out}
    produced |= {value.name for value in graph.input}
    for name in names:
        if name not in produced:
            hint = closest(name, produced)
            advice = f"did you mean '{hint}'?" if hint else "name a tensor that a node produces"
            raise ModelError(f"outputs: tensor '{name}' is not in the model; {advice}")
    known = {value.name: value for value in [*graph.output, *graph.value_info, *graph.input]}
    if any(name not in known for name in names):
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
        known.update({value.name: value for value in inferred.value_info})
    outputs = [known.get(name) or onnx.helper.make_empty_tensor_value_info(name) for name in names]
    del graph.output[:]
    graph.output.extend(outputs)
    return remove_dead_nodes(graph)


def remove_dead_nodes(graph: onnx.GraphProto) -> list[str]:
    """Drop nodes whose outputs reach no graph output; then unused initializers."""
    needed = {value.name for value in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output if out):
            keep.append(node)
            needed.update(node.input)
            needed.update(subgraph_inputs(node))
    removed = [node.name for node in graph.node if node not in keep]
    if removed:
        keep.reverse()
        del graph.node[:]
        graph.node.extend(keep)
        live = [init for init in graph.initializer if init.name in needed]
        del graph.initializer[:]
        graph.initializer.extend(live)
    return removed


def subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Names an If/Loop/Scan body reads from the enclosing scope."""
    names: set[str] = set()
    for attribute in node.attribute:
        for body in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs):
            for inner in body.node:
                names.update(inner.input)
                names.update(subgraph_inputs(inner))
    return names


def graph_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Real inputs: old exporters also list every initializer as an input."""
    initializers = {init.name for init in graph.initializer}
    return [value for value in graph.input if value.name not in initializers]

"""Pinned inputs (`inputs: {sr: {value: 16000}}`): the input becomes a constant, constants fold
through it, and every `If` whose condition became constant is replaced by the branch it takes
(nested Ifs too, since an inlined branch is folded again)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from trtc.errors import SpecError
from trtc.graph.graph_index import GraphIndex
from trtc.graph.symbolic import decide_conditions, dimension_symbols
from trtc.passes.base import Change, PassContext
from trtc.passes.fold_constants import FoldConstants
from trtc.passes.loops import Check, resolve_constant_loops

ShapeRanges = dict[str, tuple[tuple[int, ...], tuple[int, ...]]]  # input -> (lowest, highest) shape
_MAX_ROUNDS = 32  # each round inlines at least one If; nesting deeper than this is not real


def pin_inputs(
    model: onnx.ModelProto,
    values: dict[str, Any],
    static_shapes: dict[str, tuple[int, ...]] | None = None,
    check: Check | None = None,
    shape_ranges: ShapeRanges | None = None,
    record: list[Change] | None = None,
) -> dict[str, object]:
    """Freeze each named input to its value, fold, inline constant Ifs. Returns the report section;
    `record` receives a Change (pass "pinning") per node folded away, If inlined or Loop unrolled,
    so the report can trace the user's nodes through them.
    `static_shapes` are inputs whose shape every profile fixes: in a graph with Ifs, `Shape` of a
    tensor whose shape they make static becomes a constant, so shape-driven Ifs resolve too.
    `shape_ranges` (input -> lowest and highest shape over every profile) decide the Ifs whose
    condition is a fact about dynamic shapes proven for every shape in range (graph/symbolic.py).
    Loops whose trip count became constant are reported, and unrolled when small and `check`
    (onnxruntime, before vs after) agrees."""
    graph = model.graph
    inputs = {value.name: value for value in graph.input}
    pinned = []
    for name, value in values.items():
        if name not in inputs:
            raise SpecError(f"inputs.{name}.value: the model has no input '{name}'; inputs are: {', '.join(inputs)}")
        array = _as_array(name, value, inputs[name])
        graph.initializer.append(numpy_helper.from_array(array, name))
        graph.input.remove(inputs[name])
        pinned.append({"input": name, "value": array.tolist()})
    has_control = any(node.op_type in ("If", "Loop") for node in graph.node)
    shape_ranges = shape_ranges if has_control else None
    changes: list[Change] = []
    resolved = (
        fold_constant_ifs(model, static_shapes if has_control else None, shape_ranges, changes)
        if pinned or (has_control and (static_shapes or shape_ranges))
        else []
    )
    if (pinned or static_shapes) and any(node.op_type == "Loop" for node in graph.node):
        loops = resolve_constant_loops(model, check, changes)
        if any(loop["unrolled"] for loop in loops):
            resolved += fold_constant_ifs(
                model, static_shapes, shape_ranges, changes
            )  # the copies' iteration numbers are constants
        resolved += loops
    if record is not None:
        record += [replace(change, pass_name="pinning") for change in changes]
    return {"pinned_inputs": pinned, "resolved_control_flow": resolved}


def fold_constant_ifs(
    model: onnx.ModelProto,
    static_shapes: dict[str, tuple[int, ...]] | None = None,
    shape_ranges: ShapeRanges | None = None,
    changes: list[Change] | None = None,
) -> list[dict[str, str]]:
    """Fold constants (and static shapes: an inlined branch brings new Shape nodes), then replace
    each If with a constant condition by its taken branch; when none is constant, each If whose
    condition is proven over `shape_ranges`; repeat until none is left to resolve. `changes`
    receives what was folded and inlined."""
    resolved = []
    changes = [] if changes is None else changes
    for _ in range(_MAX_ROUNDS):
        if static_shapes:
            _fold_static_shapes(model, static_shapes)
        changes += FoldConstants().run(model, PassContext())
        index = GraphIndex(model.graph)
        decisions = {}
        for node in model.graph.node:
            if node.op_type == "If" and node.domain in ("", "ai.onnx"):
                condition = index.constant(node.input[0])
                if condition is not None and condition.size == 1:
                    decisions[node.name] = (bool(condition.reshape(-1)[0]), None)
        if not decisions and shape_ranges:
            probe, bounds = dimension_symbols(model, shape_ranges)
            decisions = {name: (truth.value, truth.why) for name, truth in decide_conditions(probe, bounds).items()}
        if not decisions:
            return resolved
        position, node = next(
            (i, n) for i, n in enumerate(model.graph.node) if n.name in decisions and n.op_type == "If"
        )
        taken, fact = decisions[node.name]
        branch_name = "then_branch" if taken else "else_branch"
        branch = next(a.g for a in node.attribute if a.name == branch_name)
        made = _inline(model.graph, position, node, branch)
        changes.append(Change("pinning", "inline", (node.name,), made, f"If resolved: {branch_name} inlined"))
        resolved.append(
            {"node": node.name, "op_type": "If", "taken": branch_name, **({"proven": fact} if fact else {})}
        )
    return resolved


def _inline(graph: onnx.GraphProto, position: int, node: onnx.NodeProto, branch: onnx.GraphProto) -> tuple[str, ...]:
    """Replace the If at `position` by `branch`'s nodes; their names."""
    replacement = [_copy(inner, node.name) for inner in branch.node]
    for branch_output, if_output in zip(branch.output, node.output):
        if if_output:
            replacement.append(
                helper.make_node("Identity", [branch_output.name], [if_output], name=f"{node.name}/{if_output}")
            )
    graph.initializer.extend(branch.initializer)
    del graph.node[position]
    for offset, inner in enumerate(replacement):
        graph.node.insert(position + offset, inner)
    return tuple(inner.name for inner in replacement)


def _copy(inner: onnx.NodeProto, outer_name: str) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(inner)
    # Unique, and says where it came from; an unnamed node is named by its first output (outputs
    # are unique), since passes tell nodes apart by name.
    copy.name = f"{outer_name}/{inner.name or next((o for o in inner.output if o), inner.op_type)}"
    return copy


def _as_array(name: str, value: Any, declared: onnx.ValueInfoProto) -> np.ndarray:
    tensor_type = declared.type.tensor_type
    dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise SpecError(f"inputs.{name}.value: {value!r} is not a valid {dtype} value ({error})") from None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    if tensor_type.HasField("shape") and None not in dims and list(array.shape) != dims:
        if int(np.prod(dims, dtype=np.int64)) != array.size:
            raise SpecError(
                f"inputs.{name}.value: the model declares shape {dims}, the value has {array.size} "
                f"element(s); give {int(np.prod(dims, dtype=np.int64))}"
            )
        array = array.reshape(dims)
    return array


def _fold_static_shapes(model: onnx.ModelProto, static_shapes: dict[str, tuple[int, ...]]) -> None:
    """Replace `Shape` nodes of the main graph whose input has a fully static shape once the
    static inputs are fixed by a Constant of that shape (what TensorRT would compute anyway)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for value in probe.graph.input:
        if value.name in static_shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, static_shapes[value.name]):
                dim.Clear()
                dim.dim_value = int(size)
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True)
    except Exception:  # noqa: BLE001 - inference is best effort: no folding when onnx cannot infer
        return
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    for position, node in enumerate(list(model.graph.node)):
        if node.op_type != "Shape" or node.domain not in ("", "ai.onnx") or node.input[0] not in shapes:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        full = shapes[node.input[0]]
        value = np.array(full[attributes.get("start", 0) : attributes.get("end", len(full))], dtype=np.int64)
        constant = helper.make_node(
            "Constant", [], [node.output[0]], name=node.name, value=numpy_helper.from_array(value)
        )
        model.graph.node[position].CopyFrom(constant)

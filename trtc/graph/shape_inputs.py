"""Shape-tensor inputs: integer inputs whose values become a shape (a Reshape's target shape, an
Expand's or ConstantOfShape's shape, Tile's repeats, Resize's sizes, ...). TensorRT builds kernels
for ranges of those values, so every optimization profile needs their min/opt/max values
(`set_shape_input`), given in the spec as `inputs: {name: {values: {min, opt, max}}}` (or
`range: [lo, hi]`: every element from lo to hi)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from math import prod

import numpy as np
import onnx

from trtc.errors import SpecError
from trtc.graph.io import graph_inputs
from trtc.spec.model import ShapeRange, Spec

# (op type, input position) whose values are a shape, a count or a size.
_SHAPE_SLOTS = {
    ("Reshape", 1),
    ("Expand", 1),
    ("ConstantOfShape", 0),
    ("Tile", 1),
    ("Resize", 3),
    ("Upsample", 1),
    ("Range", 0),
    ("Range", 1),
    ("Range", 2),
    ("OneHot", 1),
    ("TopK", 1),
    ("Slice", 1),
    ("Slice", 2),
    ("Slice", 3),
    ("Slice", 4),
    ("Pad", 1),
    ("Squeeze", 1),
    ("Unsqueeze", 1),
    ("ReduceSum", 1),
    ("ReduceMean", 1),
    ("ReduceMax", 1),
    ("ReduceMin", 1),
    ("ReduceProd", 1),
    ("Split", 1),
    ("Trilu", 1),
    ("RandomNormalLike", 0),
}
# Ops through which a shape stays a shape (shape arithmetic).
_PASS_THROUGH = {
    "Cast",
    "Concat",
    "Gather",
    "Slice",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Max",
    "Min",
    "Abs",
    "Neg",
    "ReduceProd",
    "ReduceSum",
    "Reshape",
    "Flatten",
}
_INTEGER = {onnx.TensorProto.INT32, onnx.TensorProto.INT64}


def shape_tensor_inputs(model: onnx.ModelProto) -> dict[str, str]:
    """Integer inputs of rank 0 or 1 whose values reach a shape slot of a node in the main graph:
    name -> where (e.g. "the shape of Reshape 'reshape'")."""
    consumers = defaultdict(list)
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            if name:
                consumers[name].append((node, position))
    found = {}
    for value in graph_inputs(model.graph):
        tensor = value.type.tensor_type
        if tensor.elem_type not in _INTEGER or len(tensor.shape.dim) > 1:
            continue
        frontier, seen = [value.name], {value.name}
        while frontier and value.name not in found:
            tensor_name = frontier.pop()
            for node, position in consumers[tensor_name]:
                if (node.op_type, position) in _SHAPE_SLOTS and not node.domain:
                    found[value.name] = f"input {position} of {node.op_type} '{node.name}'"
                    break
                if node.op_type in _PASS_THROUGH and not node.domain:
                    for out in node.output:
                        if out and out not in seen:
                            seen.add(out)
                            frontier.append(out)
    return found


def attach_shape_values(model: onnx.ModelProto, profiles: list[dict[str, ShapeRange]], spec: Spec) -> dict[str, str]:
    """Put the spec's values of every shape-tensor input into each profile's range of it (in
    place); SpecError naming the input when the spec gives none or the wrong count."""
    found = shape_tensor_inputs(model)
    for name, where in found.items():
        if name not in profiles[0]:
            continue  # pinned: a constant now
        setting = spec.input_settings.get(name)
        shape = profiles[0][name].min
        count = prod(shape)
        if any(p[name].min != p[name].max for p in profiles):
            raise SpecError(
                f"inputs.{name}: a shape-tensor input ({where}) needs a fixed shape; give inputs: {{{name}: {{shape: [{count}]}}}}"
            )
        if setting is None or (setting.shape_values is None and setting.value_range is None):
            raise SpecError(
                f"inputs.{name}: its values are a shape ({where}), and TensorRT builds for a range of them; "
                f"give inputs: {{{name}: {{values: {{min: [...], opt: [...], max: [...]}}}}}} "
                f"({count} value(s) each), or pin it with value: [...]"
            )
        if setting.shape_values is not None:
            values = setting.shape_values
            for label in ("min", "opt", "max"):
                if len(getattr(values, label)) != count:
                    raise SpecError(
                        f"inputs.{name}.values.{label}: the input has shape {list(shape)}, so {count} value(s); "
                        f"got {len(getattr(values, label))}"
                    )
        else:
            low, high = (int(v) for v in setting.value_range)
            values = ShapeRange((low,) * count, (high,) * count, (high,) * count)
        for profile in profiles:
            profile[name] = replace(profile[name], values=values)
    return found


def feed_values(profile: dict[str, ShapeRange], which: str) -> dict[str, np.ndarray]:
    """The shape-tensor inputs' values at a profile's min, opt or max, for onnxruntime runs."""
    return {
        name: np.array(getattr(r.values, which), dtype=np.int64).reshape(r.min)
        for name, r in profile.items()
        if r.values
    }

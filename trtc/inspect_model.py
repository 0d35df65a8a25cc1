"""`trtc inspect`: the per-node cost table of a model at concrete input shapes, without building."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trtc.errors import UsageError
from trtc.graph.cost import NodeCost, node_costs, totals
from trtc.graph.io import load_model, name_unnamed_nodes
from trtc.graph.profiles import model_inputs
from trtc.spec.validate import closest


@dataclass
class Inspection:
    model: Path
    shapes: dict[str, tuple[int, ...]]
    costs: dict[str, NodeCost]
    totals: dict


def inspect_model(path: Path, shapes: dict[str, tuple[int, ...]]) -> Inspection:
    if not path.is_file():
        raise UsageError(f"model not found: {path}")
    model = load_model(path).proto
    name_unnamed_nodes(model.graph)
    inputs = {item.name: item for item in model_inputs(model)}
    for name in shapes:
        if name not in inputs:
            hint = closest(name, inputs)
            raise UsageError(f"--shape {name}: the model has no input of that name" + (f"; did you mean '{hint}'?" if hint else f"; its inputs are: {', '.join(inputs)}"))
    resolved = {}
    for name, item in inputs.items():
        shape = shapes.get(name)
        if shape is None:
            if not item.is_static:
                axis = next(i for i, d in enumerate(item.dims) if not isinstance(d, int))
                example = "x".join(str(d) if isinstance(d, int) else "1" for d in item.dims)
                raise UsageError(f"input {item.describe()}: dimension {axis} is dynamic; give it with --shape {name}={example}")
            shape = tuple(item.dims)
        elif len(shape) != len(item.dims) or any(isinstance(d, int) and d != s for d, s in zip(item.dims, shape)):
            raise UsageError(f"--shape {name}={'x'.join(map(str, shape))}: does not fit the model's input {item.describe()}")
        resolved[name] = tuple(shape)
    costs = node_costs(model, resolved)
    return Inspection(path, resolved, costs, totals(costs))


def parse_shapes(texts: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for text in texts:
        name, shape = parse_shape(text)
        if name in shapes:
            raise UsageError(f"--shape {name}: given twice; give each input once")
        shapes[name] = shape
    return shapes


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d <= 0 for d in shape):
        raise UsageError(f"--shape expects NAME=DxDxD, e.g. images=1x3x224x224; got {text!r}")
    return name, shape

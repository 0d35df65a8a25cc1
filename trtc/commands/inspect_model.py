"""`trtc inspect`: the per-node cost table of a model without building: at the input shapes given,
and as formulas in the dynamic dimensions given none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trtc.errors import UsageError
from trtc.graph.cost import NodeCost, node_costs, totals
from trtc.graph.io import load_model, name_unnamed_nodes
from trtc.graph.polynomial import Poly
from trtc.graph.profiles import model_inputs
from trtc.graph.shapes import TensorType, tensor_types
from trtc.spec.validate import closest


@dataclass
class Inspection:
    model: Path
    shapes: dict[str, tuple[int | str, ...]]  # a str: a dynamic dimension given no --shape (a symbol)
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
            raise UsageError(
                f"--shape {name}: the model has no input of that name"
                + (f"; did you mean '{hint}'?" if hint else f"; its inputs are: {', '.join(inputs)}")
            )
    resolved: dict[str, tuple[int | str, ...]] = {}
    for name, item in inputs.items():
        shape = shapes.get(name)
        if shape is None:
            shape = tuple(d if isinstance(d, int) else _symbol(name, axis, d) for axis, d in enumerate(item.dims))
        elif len(shape) != len(item.dims) or any(isinstance(d, int) and d != s for d, s in zip(item.dims, shape)):
            raise UsageError(
                f"--shape {name}={'x'.join(map(str, shape))}: does not fit the model's input {item.describe()}"
            )
        resolved[name] = tuple(shape)
    symbols = {d for shape in resolved.values() for d in shape if isinstance(d, str)}
    costs = node_costs(model, types=_symbolic(tensor_types(model, resolved), symbols))
    return Inspection(path, resolved, costs, totals(costs))


def _symbol(name: str, axis: int, dim: str) -> str:
    """A dynamic dimension without --shape: its own name in the model (shared names are one
    symbol, as the model means), or input[axis] when it has none."""
    return dim if dim and dim != "?" else f"{name}[{axis}]"


def _symbolic(types: dict[str, TensorType], symbols: set[str]) -> dict[str, TensorType]:
    """Dimensions named by a symbol become polynomials, so costs come out as formulas; names
    that inference invented stay unknown."""
    if not symbols:
        return types
    return {
        name: TensorType(
            t.elem_type,
            None
            if t.shape is None
            else tuple(Poly.symbol(d) if isinstance(d, str) and d in symbols else d for d in t.shape),
        )
        for name, t in types.items()
    }


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

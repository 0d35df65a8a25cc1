"""Facts about shapes that hold for every shape a profile admits, proven, never sampled.

Each dynamic input dimension becomes a symbol bounded by the profiles' min and max. Shape
arithmetic (Shape, Size, Gather, Slice, Concat, Add/Sub/Mul/Div, comparisons, Not/And/Or,
Where, Cast) is carried as polynomials in those symbols; a comparison is decided only when
interval arithmetic over the bounds proves it for every value in range (`256*B == 0` with B in
[1, 8] is false everywhere). Anything else stays unknown. Used to fold shape-driven `If`s that
pinning and static shapes cannot resolve under a dynamic batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from trtc.graph.polynomial import Bounds, Poly


@dataclass(frozen=True)
class Truth:
    """A proven boolean, with the fact that proved it."""

    value: bool
    why: str


Element = Poly | Truth | None  # None: unknown


@dataclass(frozen=True)
class SymValue:
    """A small integer or boolean tensor (a shape, a size, a condition), element by element."""

    elements: tuple[Element, ...]
    rank: int  # 0 or 1: shape arithmetic is scalars and vectors


def dimension_symbols(
    model: onnx.ModelProto, ranges: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
) -> tuple[onnx.ModelProto, Bounds]:
    """A copy of `model` whose dynamic input dimensions are named symbols, and their bounds.
    `ranges` is input -> (lowest, highest) shape over every profile."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    bounds: Bounds = {}
    for value in probe.graph.input:
        if value.name not in ranges:
            continue
        low, high = ranges[value.name]
        for axis, (dim, lo, hi) in enumerate(zip(value.type.tensor_type.shape.dim, low, high)):
            dim.Clear()
            if lo == hi:
                dim.dim_value = int(lo)
            else:
                name = f"{value.name}[{axis}]"
                dim.dim_param = name
                bounds[name] = (int(lo), int(hi))
    return probe, bounds


def decide_conditions(model: onnx.ModelProto, bounds: Bounds) -> dict[str, Truth]:
    """The `If` nodes of the main graph whose condition is proven for every shape in `bounds`:
    node name -> the truth. `model` must carry the symbols of `dimension_symbols`."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # noqa: BLE001 - inference is best effort: no shape facts, nothing decided
        return {}
    shapes = _symbolic_shapes(inferred, bounds)
    values: dict[str, SymValue] = {
        init.name: v for init in model.graph.initializer if (v := _constant(numpy_helper.to_array(init)))
    }
    producers = {output: node for node in model.graph.node for output in node.output}
    decided = {}
    for node in model.graph.node:
        if node.op_type == "If" and node.domain in ("", "ai.onnx"):
            condition = values.get(node.input[0])
            if condition and len(condition.elements) == 1 and isinstance(condition.elements[0], Truth):
                truth, source = condition.elements[0], producers.get(node.input[0])
                where = f"{source.op_type} '{source.name}'" if source is not None else f"'{node.input[0]}'"
                decided[node.name] = Truth(truth.value, f"condition {where} is {str(truth.value).lower()}: {truth.why}")
            continue
        try:
            outputs = _evaluate(node, values, shapes, bounds)
        except (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError):
            outputs = None  # shapes this evaluator does not follow stay unknown
        for name, value in zip(node.output, outputs or ()):
            if value is not None:
                values[name] = value
    return decided


def _symbolic_shapes(model: onnx.ModelProto, bounds: Bounds) -> dict[str, tuple[Poly | None, ...]]:
    shapes = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        shapes[value.name] = tuple(
            Poly.constant(d.dim_value)
            if d.HasField("dim_value")
            else Poly.symbol(d.dim_param)
            if d.dim_param in bounds
            else None
            for d in tensor_type.shape.dim
        )
    return shapes


def _constant(array: np.ndarray) -> SymValue | None:
    if array.ndim > 1 or array.size > 64:
        return None
    flat = array.reshape(-1)
    if array.dtype == np.bool_:
        return SymValue(tuple(Truth(bool(x), f"the constant {bool(x)}") for x in flat), array.ndim)
    if array.dtype.kind in "iu" or (
        array.dtype.kind == "f" and np.all(np.isfinite(flat)) and np.all(flat == np.round(flat))
    ):
        return SymValue(tuple(Poly.constant(int(x)) for x in flat), array.ndim)
    return None


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _evaluate(
    node: onnx.NodeProto, values: dict[str, SymValue], shapes, bounds: Bounds
) -> list[SymValue | None] | None:
    op, attrs = node.op_type, _attributes(node)
    args = [values.get(name) if name else None for name in node.input]
    if op == "Constant" and "value" in attrs:
        return [_constant(numpy_helper.to_array(attrs["value"]))]
    if op in ("Shape", "Size"):
        dims = shapes.get(node.input[0])
        if dims is None:
            return None
        if op == "Size":
            return [SymValue((_product(dims),), 0)]
        start, end = attrs.get("start", 0), attrs.get("end", len(dims))
        return [SymValue(tuple(dims[start:end]), 1)]
    if op in ("Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten") and args[0] is not None:
        out = shapes.get(node.output[0])
        return [SymValue(args[0].elements, len(out) if out is not None and len(out) <= 1 else args[0].rank)]
    if any(arg is None for arg in args[:1]):
        return None
    if op == "Gather" and args[1] is not None and attrs.get("axis", 0) == 0 and args[0].rank == 1:
        picks = [_int(e) for e in args[1].elements]
        size = len(args[0].elements)
        return [SymValue(tuple(args[0].elements[p + size if p < 0 else p] for p in picks), args[1].rank)]
    if op == "Slice" and args[0].rank == 1:
        starts, ends = (_int(args[1].elements[0]), _int(args[2].elements[0])) if len(args) > 2 else (None, None)
        step = _int(args[4].elements[0]) if len(args) > 4 and args[4] else 1
        return [SymValue(args[0].elements[slice(starts, ends, step)], 1)]
    if op == "Concat" and all(a is not None for a in args):
        return [SymValue(tuple(e for a in args for e in a.elements), 1)]
    if op == "Cast":
        return [_cast(args[0], attrs["to"], bounds)]
    if op in _ARITHMETIC and args[1] is not None:
        return [_elementwise(args[0], args[1], lambda a, b: _arithmetic(op, a, b))]
    if op in _COMPARISONS and args[1] is not None:
        return [_elementwise(args[0], args[1], lambda a, b: _compare(op, a, b, bounds))]
    if op in ("And", "Or", "Xor") and args[1] is not None:
        return [_elementwise(args[0], args[1], lambda a, b: _logic(op, a, b))]
    if op == "Not":
        return [
            SymValue(
                tuple(Truth(not e.value, e.why) if isinstance(e, Truth) else None for e in args[0].elements),
                args[0].rank,
            )
        ]
    if op == "Where" and len(args) == 3 and args[1] is not None and args[2] is not None:
        return [_where(args[0], args[1], args[2])]
    return None


def _product(dims) -> Poly | None:
    if any(d is None for d in dims):
        return None
    result = Poly.constant(1)
    for dim in dims:
        result = result * dim
    return result


def _int(element: Element) -> int:
    if not isinstance(element, Poly) or element.value is None:
        raise ValueError("not a constant")
    return element.value


def _broadcast(a: SymValue, b: SymValue) -> list[tuple[Element, Element]]:
    x, y = a.elements, b.elements
    if len(x) == 1:
        x = x * len(y)
    if len(y) == 1:
        y = y * len(x)
    if len(x) != len(y):
        raise ValueError("shapes do not broadcast")
    return list(zip(x, y))


def _elementwise(a: SymValue, b: SymValue, combine) -> SymValue:
    return SymValue(tuple(combine(x, y) for x, y in _broadcast(a, b)), max(a.rank, b.rank))


_ARITHMETIC = {"Add", "Sub", "Mul", "Div"}
_COMPARISONS = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}


def _arithmetic(op: str, a: Element, b: Element) -> Poly | None:
    if not isinstance(a, Poly) or not isinstance(b, Poly):
        return None
    if op == "Add":
        return a + b
    if op == "Sub":
        return a - b
    if op == "Mul":
        return a * b
    divisor = b.value
    return a.exact_division(divisor) if divisor else None


def _compare(op: str, a: Element, b: Element, bounds: Bounds) -> Truth | None:
    if not isinstance(a, Poly) or not isinstance(b, Poly):
        return None
    difference = a - b
    low, high = difference.interval(bounds)
    fact = f"{a} {_SYMBOLS[op]} {b} with {_ranges(difference, bounds)}"
    if op == "Equal":
        if not difference.terms:
            return Truth(True, f"{a} == {b} for every shape")
        return Truth(False, f"{fact}: the difference lies in [{low}, {high}]") if low > 0 or high < 0 else None
    proven = {
        "Less": (high < 0, low >= 0),
        "LessOrEqual": (high <= 0, low > 0),
        "Greater": (low > 0, high <= 0),
        "GreaterOrEqual": (low >= 0, high < 0),
    }[op]
    if proven[0] or proven[1]:
        return Truth(proven[0], f"{fact}: the difference lies in [{low}, {high}]")
    return None


_SYMBOLS = {"Equal": "==", "Less": "<", "Greater": ">", "LessOrEqual": "<=", "GreaterOrEqual": ">="}


def _ranges(poly: Poly, bounds: Bounds) -> str:
    names = sorted({name for monomial, _ in poly.terms for name in monomial})
    return ", ".join(f"{name} in [{bounds[name][0]}, {bounds[name][1]}]" for name in names) or "constants only"


def _logic(op: str, a: Element, b: Element) -> Truth | None:
    x, y = (e if isinstance(e, Truth) else None for e in (a, b))
    if op == "And":
        if (x and not x.value) or (y and not y.value):
            return x if x and not x.value else y
        return Truth(True, f"{x.why}; {y.why}") if x and y else None
    if op == "Or":
        if (x and x.value) or (y and y.value):
            return x if x and x.value else y
        return Truth(False, f"{x.why}; {y.why}") if x and y else None
    return Truth(x.value != y.value, f"{x.why}; {y.why}") if x and y else None


def _cast(value: SymValue, to: int, bounds: Bounds) -> SymValue:
    if to == onnx.TensorProto.BOOL:
        elements = []
        for element in value.elements:
            if isinstance(element, Poly):
                low, high = element.interval(bounds)
                if not element.terms:
                    elements.append(Truth(False, "the constant 0"))
                elif low > 0 or high < 0:
                    elements.append(
                        Truth(True, f"{element} is never 0 ({_ranges(element, bounds)}: it lies in [{low}, {high}])")
                    )
                else:
                    elements.append(None)
            else:
                elements.append(element)
        return SymValue(tuple(elements), value.rank)
    if to in (onnx.TensorProto.STRING,):
        return SymValue((None,) * len(value.elements), value.rank)
    # Integers and floats hold shape values exactly; a boolean becomes 0 or 1.
    return SymValue(
        tuple(Poly.constant(int(e.value)) if isinstance(e, Truth) else e for e in value.elements), value.rank
    )


def _where(condition: SymValue, x: SymValue, y: SymValue) -> SymValue:
    size = max(len(condition.elements), len(x.elements), len(y.elements))
    pick = lambda values, i: values.elements[0 if len(values.elements) == 1 else i]  # noqa: E731
    elements = []
    for i in range(size):
        chosen = pick(condition, i)
        elements.append((pick(x, i) if chosen.value else pick(y, i)) if isinstance(chosen, Truth) else None)
    return SymValue(tuple(elements), max(condition.rank, x.rank, y.rank))

"""Dynamic dimensions that share one symbolic name across inputs (`T` in two inputs): TensorRT
treats equal names as equal values, so a spec giving them different ranges fails deep in the
builder ("expect min <= common <= max"). When the ranges differ, each such dimension gets its
own name; when they agree, the shared name stays (it tells TensorRT something true)."""

from __future__ import annotations

from collections import defaultdict

import onnx

from trtc.spec.model import ShapeRange


def separate_shared_dims(model: onnx.ModelProto, profiles: list[dict[str, ShapeRange]]) -> list[str]:
    """Rename shared dimension names whose ranges differ between the inputs using them; returns
    one line per renamed dimension for the report."""
    uses: dict[str, list[tuple[onnx.TensorShapeProto.Dimension, str, int]]] = defaultdict(list)
    for value in model.graph.input:
        if value.name not in profiles[0]:
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param:
                uses[dim.dim_param].append((dim, value.name, axis))
    renamed = []
    for name, places in uses.items():
        ranges = {
            tuple((p[input_name].min[axis], p[input_name].opt[axis], p[input_name].max[axis]) for p in profiles)
            for _, input_name, axis in places
        }
        if len(places) < 2 or len(ranges) == 1:
            continue
        for dim, input_name, axis in places:
            dim.dim_param = f"{name}__{input_name}_{axis}"
        renamed.append(f"'{name}' ({', '.join(f'{i}[{a}]' for _, i, a in places)})")
    return renamed

"""Declared output shapes are not trusted: the report sets, for every graph output, the shape
the model declares beside the shape onnxruntime produces and the shape of TensorRT's binding,
and warns where they disagree (a wrong declaration is how folding tools break real models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from trtc.graph.reference import Reference, ReferenceUnavailable


def declared_shapes(model: onnx.ModelProto) -> dict[str, list]:
    shapes = {}
    for value in model.graph.output:
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            shapes[value.name] = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim
            ]
        else:
            shapes[value.name] = None
    return shapes


def observed_outputs(
    model: onnx.ModelProto | bytes | Path, feeds: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray] | None, str]:
    """The model's outputs on `feeds` as onnxruntime computes them unoptimized (the session starts
    several times faster, and the graph passes' verification reuses them as its reference)."""
    try:
        return Reference(model, optimize=False).run(feeds), ""
    except ReferenceUnavailable as error:
        return None, error.message


def shapes_of(values: dict[str, np.ndarray] | None) -> dict[str, list] | None:
    return None if values is None else {name: list(value.shape) for name, value in values.items()}


def compare(
    declared: dict[str, list], observed: dict[str, list] | None, bindings: dict[str, list]
) -> tuple[list[dict], list[str]]:
    rows, warnings = [], []
    for name, shape in declared.items():
        produced = (observed or {}).get(name)
        engine = bindings.get(name)
        rows.append({"output": name, "declared": shape, "onnxruntime": produced, "tensorrt": engine})
        problems = []
        for label, other in (("onnxruntime produced", produced), ("TensorRT's binding is", engine)):
            if shape is None or other is None:
                continue
            if len(other) != len(shape) or any(
                isinstance(d, int) and d > 0 and o not in (d, -1) for d, o in zip(shape, other)
            ):
                problems.append(f"{label} {other}")
        if problems:
            warnings.append(
                f"output '{name}': the model declares {shape} but {' and '.join(problems)}; the declaration is wrong "
                "(trtc builds what the graph computes)"
            )
    return rows, warnings

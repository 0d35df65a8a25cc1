"""Turn the spec's shape ranges and the model's declared inputs into complete optimization
profiles: every dynamic dimension of every input gets a min/opt/max, or the user is told which
one is missing."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from trtc.errors import ModelError, SpecError, closest
from trtc.graph.batch_dim import BatchAxis, batch_axes
from trtc.graph.io import graph_inputs
from trtc.spec.model import ShapeRange, Spec

# A dimension: an int when static, else the symbolic name (or "?" when unnamed).
Dim = int | str


@dataclass(frozen=True)
class ModelInput:
    name: str
    dims: tuple[Dim, ...]
    dtype: str

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.dims)

    def describe(self) -> str:
        return f"{self.name}[{','.join(str(d) for d in self.dims)}] {self.dtype}"


def model_inputs(model: onnx.ModelProto) -> list[ModelInput]:
    result = []
    for value in graph_inputs(model.graph):
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            raise ModelError(
                f"model: input '{value.name}' is not a tensor (sequences and maps are not supported by TensorRT)"
            )
        dims: list[Dim] = []
        for dim in tensor.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(dim.dim_value)
            else:
                dims.append(dim.dim_param or "?")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "undefined"
        result.append(ModelInput(value.name, tuple(dims), dtype))
    return result


def resolve_profiles(inputs: list[ModelInput], spec: Spec) -> tuple[list[dict[str, ShapeRange]], list[str]]:
    """Complete profiles for every engine input, and warnings. Raises SpecError naming the input
    and dimension when a dynamic dimension has no range."""
    by_name = {item.name: item for item in inputs}
    pinned = {name for name, setting in spec.input_settings.items() if setting.value is not None}
    for name in [*pinned, *(n for profile in spec.profiles for n in profile), *spec.input_settings]:
        if name not in by_name:
            hint = closest(name, by_name)
            advice = f"did you mean '{hint}'?" if hint else f"the model's inputs are: {', '.join(by_name) or 'none'}"
            raise SpecError(f"inputs: '{name}' is not an input of the model; {advice}")
    warnings: list[str] = []
    engine_inputs = [item for item in inputs if item.name not in pinned]
    batch = batch_axes([(item.name, item.dims) for item in engine_inputs])
    if spec.max_batch and not any(found.axis is not None or found.ambiguous for found in batch.values()):
        warnings.append(f"max_batch: {spec.max_batch} has no effect: no input has a dynamic batch dimension")
    profiles = []
    for given in spec.profiles or ({},):
        profile = {}
        for item in engine_inputs:
            if item.name in given:
                profile[item.name] = _checked_range(item, given[item.name])
            else:
                profile[item.name] = _default_range(item, spec.max_batch, batch[item.name])
        profiles.append(profile)
    return profiles, warnings


def _checked_range(item: ModelInput, shape_range: ShapeRange) -> ShapeRange:
    if len(shape_range.min) != len(item.dims):
        raise SpecError(
            f"inputs.{item.name}: the model's input has rank {len(item.dims)} ({item.describe()}); the spec gives "
            f"rank {len(shape_range.min)}"
        )
    fixed = shape_range.min == shape_range.opt == shape_range.max  # `shape:` in the spec
    labelled = (
        (("shape", shape_range.min),)
        if fixed
        else (("min", shape_range.min), ("opt", shape_range.opt), ("max", shape_range.max))
    )
    for axis, dim in enumerate(item.dims):
        if isinstance(dim, int):
            for label, shape in labelled:
                if shape[axis] != dim:
                    raise SpecError(
                        f"inputs.{item.name}.{label}: dimension {axis} is fixed to {dim} in the model ({item.describe()}); "
                        f"got {shape[axis]}"
                    )
    return shape_range


def _default_range(item: ModelInput, max_batch: int | None, batch: BatchAxis) -> ShapeRange:
    if max_batch and batch.ambiguous:
        raise SpecError(
            f"max_batch: cannot tell which dimension of input {item.describe()} is the batch ({batch.ambiguous}); "
            f"give its shapes: inputs: {{{item.name}: {{min: [...], opt: [...], max: [...]}}}}"
        )
    low, high = [], []
    for axis, dim in enumerate(item.dims):
        if isinstance(dim, int):
            low.append(dim)
            high.append(dim)
        elif axis == batch.axis and max_batch:
            low.append(1)
            high.append(max_batch)
        else:
            name = "" if dim == "?" else f" ('{dim}')"
            hint = "set max_batch, or " if axis == batch.axis or batch.ambiguous else ""
            raise SpecError(
                f"inputs.{item.name}: dimension {axis}{name} of {item.describe()} is dynamic and has no range; "
                f"{hint}add inputs: {{{item.name}: {{min: [...], opt: [...], max: [...]}}}}"
            )
    return ShapeRange(tuple(low), tuple(high), tuple(high))

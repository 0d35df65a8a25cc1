"""What TensorRT says about an engine it built: its kernels and its I/O bindings.

Filled from the builder's `Layers:` log message (any machine) or the engine inspector's JSON
(where a GPU can deserialize the plan); both parsers produce these objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from trtc.backend.layer_metadata import metadata_nodes

# Layer types that order streams rather than compute anything.
SYNC_LAYER_TYPES = frozenset({"signal", "wait"})

# TensorRT's datatype names, narrowest first: the order that decides a kernel's precision.
_NARROW_FIRST = ("FP4", "Int4", "FP8", "Int8", "Half", "BFloat16", "Float")


@dataclass(frozen=True)
class KernelTensor:
    name: str
    dims: tuple[int, ...]
    dtype: str
    format: str = ""


@dataclass(frozen=True)
class Kernel:
    name: str
    layer_type: str
    inputs: tuple[KernelTensor, ...] = ()
    outputs: tuple[KernelTensor, ...] = ()
    constants: tuple[KernelTensor, ...] = ()
    tactic: str = ""
    stream: int = 0
    metadata: str = ""  # the ONNX nodes it covers, as TensorRT wrote them

    @property
    def onnx_nodes(self) -> tuple[str, ...]:
        """The node names in `metadata` as the text alone tells them; the fusion map reads them
        against the model's node names (`layer_metadata.metadata_nodes`)."""
        return metadata_nodes(self.metadata)

    @property
    def is_sync(self) -> bool:
        return self.layer_type in SYNC_LAYER_TYPES

    @property
    def precision(self) -> str:
        """The datatype the kernel computes in: the narrowest type among its inputs (an INT8
        convolution reads Int8 data beside Float scales), else among its outputs."""
        for tensors in (self.inputs, self.outputs):
            kinds = {t.dtype for t in tensors if t.dtype}
            for dtype in _NARROW_FIRST:
                if dtype in kinds:
                    return dtype
            if kinds:
                return sorted(kinds)[0]
        return ""


@dataclass(frozen=True)
class ProfileShapes:
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class Binding:
    name: str
    mode: str  # "Input" or "Output"
    dtype: str
    dims: tuple[int, ...]
    profiles: tuple[ProfileShapes, ...] = ()


@dataclass(frozen=True)
class EngineInfo:
    kernels: tuple[Kernel, ...] = ()
    bindings: tuple[Binding, ...] = ()
    source: str = ""  # "builder-log" or "engine-inspector"
    optimizer_stages: tuple[tuple[str, int], ...] = field(default=())

    @property
    def compute_kernels(self) -> tuple[Kernel, ...]:
        return tuple(k for k in self.kernels if not k.is_sync)

    def to_dict(self) -> dict:
        return asdict(self)

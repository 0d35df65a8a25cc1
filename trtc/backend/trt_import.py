"""The one door to TensorRT: every other backend module gets the module from here.

`tensorrt` (data-centre GPUs, NVIDIA's index) and `tensorrt_rtx` (PyPI, builds ahead-of-time
without a GPU) share the builder API that trtc uses; the rest is feature-detected.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from trtc.errors import BackendUnavailableError

# Spec name -> Python module, in the order `auto` tries them.
MODULES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}


@dataclass(frozen=True)
class TensorRT:
    module: ModuleType
    name: str  # "tensorrt" or "tensorrt-rtx"

    @property
    def version(self) -> str:
        return str(getattr(self.module, "__version__", "unknown"))

    @property
    def is_rtx(self) -> bool:
        return self.name == "tensorrt-rtx"


def import_tensorrt(preference: str = "auto") -> TensorRT:
    """The TensorRT module the spec asks for; `auto` prefers full TensorRT when it imports."""
    names = list(MODULES) if preference == "auto" else [preference]
    reasons = []
    for name in names:
        try:
            return TensorRT(importlib.import_module(MODULES[name]), name)
        except (ImportError, OSError) as exc:
            # A bindings-only wheel imports far enough to fail on libnvinfer: not usable.
            reasons.append(f"{MODULES[name]}: {exc}".splitlines()[0])
    if preference == "auto":
        raise BackendUnavailableError(
            "no TensorRT is installed: `pip install tensorrt-rtx` (builds without a GPU) or install `tensorrt` from NVIDIA's index",
            reasons,
        )
    package = "tensorrt-rtx" if preference == "tensorrt-rtx" else "tensorrt"
    raise BackendUnavailableError(f"target.backend is '{preference}' but it does not import: `pip install {package}` or set target.backend: auto", reasons)

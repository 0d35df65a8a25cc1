"""The one door to TensorRT: every other backend module gets the module from here.

`tensorrt` (data-centre GPUs, NVIDIA's index) and `tensorrt_rtx` (PyPI, builds ahead-of-time
without a GPU) share the builder API that trtc uses; the rest is feature-detected.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from trtc.errors import BackendUnavailableError

# Spec name -> Python module, in the order `auto` tries them.
MODULES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}

# Python module -> distributions that may own it, most specific first (the bindings wheel owns
# the module; the meta package only pulls it in).
_DISTRIBUTIONS = {
    "tensorrt": [
        "tensorrt-cu13-bindings",
        "tensorrt-cu12-bindings",
        "tensorrt-cu11-bindings",
        "tensorrt-bindings",
        "tensorrt",
    ],
    "tensorrt_rtx": ["tensorrt-rtx-cu13", "tensorrt-rtx-cu12", "tensorrt-rtx"],
}


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
    raise BackendUnavailableError(
        f"target.backend is '{preference}' but it does not import: `pip install {package}` or set target.backend: auto",
        reasons,
    )


def backend_identity(preference: str) -> str:
    """Which TensorRT package will build and its version, read from package metadata without
    importing it (importing TensorRT costs seconds)."""
    import importlib.metadata  # 50 ms: only when a fingerprint is taken

    names = list(MODULES) if preference == "auto" else [preference]
    for name in names:
        module = MODULES[name]
        if importlib.util.find_spec(module) is None:
            continue
        for distribution in _DISTRIBUTIONS[module]:
            try:
                return f"{name} {importlib.metadata.version(distribution)}"
            except importlib.metadata.PackageNotFoundError:
                continue
        return f"{name} (version unknown)"
    return "none"

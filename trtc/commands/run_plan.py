"""`trtc run`: execute a plan on this machine's GPU with given or random inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trtc.backend.runtime import RunResult, run_plan
from trtc.backend.trt_import import import_tensorrt
from trtc.errors import UsageError


def run_plan_file(plan: Path, inputs: dict[str, Path], backend: str = "auto", iterations: int = 10) -> RunResult:
    if not plan.is_file():
        raise UsageError(f"plan not found: {plan} (build one with `trtc build spec.yaml`)")
    feeds = {name: _load_array(name, path) for name, path in inputs.items()}
    return run_plan(import_tensorrt(backend), plan.read_bytes(), feeds, iterations)


def _load_array(name: str, path: Path) -> np.ndarray:
    if not path.is_file():
        raise UsageError(f"--input {name}={path}: file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UsageError(f"--input {name}={path}: not a .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):
        raise UsageError(f"--input {name}={path}: expected one array in a .npy file, got an archive")
    return array

"""Make-format dependency files: `-include build/demo.d` in a Makefile rebuilds the plan when the
spec, the model, its external data or the calibration data change."""

from __future__ import annotations

import os
from pathlib import Path

from trtc.outputs import StagedOutputs


def render(targets: list[Path], prerequisites: list[Path]) -> str:
    """One rule; paths relative to the working directory when below it (Make compares target
    names as strings, and Makefiles name them relative to where make runs)."""
    unique = list(dict.fromkeys(prerequisites))
    lines = [" ".join(_escaped(p) for p in targets) + ": \\"]
    lines += [f"  {_escaped(p)} \\" for p in unique[:-1]]
    lines += [f"  {_escaped(unique[-1])}"] if unique else []
    # An empty rule per prerequisite: deleting one then rebuilds instead of failing make.
    lines += [""] + [f"{_escaped(p)}:" for p in unique]
    return "\n".join(lines) + "\n"


def write(path: Path, targets: list[Path], prerequisites: list[Path]) -> None:
    with StagedOutputs() as staged:
        staged.write(path, render(targets, prerequisites))
        staged.commit()


def _escaped(path: Path) -> str:
    text = str(path)
    try:
        relative = os.path.relpath(path)
        if not relative.startswith(".."):
            text = relative
    except ValueError:  # another drive on Windows
        pass
    return text.replace("$", "$$").replace("#", "\\#").replace(" ", "\\ ")

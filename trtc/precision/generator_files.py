"""The files a `python:module:function` calibration generator is made of, found without running any
of its code: the calibration cache key and the build fingerprint hash them, and a no-op `trtc
build` must not run the user's code. `importlib.util.find_spec` would import the parent packages
(running their `__init__.py`), so the module is located on the import path one name at a time.

A module inside a package brings every `.py` file of its top-level package (it may import any of
them); a lone module in the spec's folder brings the `.py` files beside it; a lone module elsewhere
(site-packages) brings itself. Files the generator reads at run time are not seen."""

from __future__ import annotations

import sys
from importlib.machinery import PathFinder
from pathlib import Path

from trtc.errors import SpecError


def generator_target(target: str, key: str) -> tuple[str, str]:
    """(module, function) of `target`, `module:function`; a spec error under `key` otherwise."""
    module, sep, function = target.partition(":")
    if not sep or not module or not function:
        raise SpecError(f"{key}: expected python:module:function, got 'python:{target}'")
    return module, function


def generator_files(target: str, base: Path) -> list[Path]:
    """`target` is `module:function`; [] when the module is not a source file on the import path
    (the build itself then reports it). Searched as the generator is imported: the spec's folder first."""
    module = target.partition(":")[0]
    if not module:
        return []
    parts = module.split(".")
    search = [str(base), *sys.path]
    top = found = PathFinder.find_spec(parts[0], search)
    for depth in range(1, len(parts)):
        if found is None or not found.submodule_search_locations:
            return []
        found = PathFinder.find_spec(".".join(parts[: depth + 1]), list(found.submodule_search_locations))
    origin = Path(found.origin) if found is not None and found.origin else None
    if origin is None or not origin.is_file():
        return []
    if top.submodule_search_locations:
        roots = [Path(location) for location in top.submodule_search_locations]
        return sorted({path for root in roots for path in root.rglob("*.py") if "__pycache__" not in path.parts})
    if origin.parent.resolve() == base.resolve():
        return sorted(origin.parent.glob("*.py"))
    return [origin]

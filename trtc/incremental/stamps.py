"""File stamps: size, modification time and inode, what build tools trust instead of re-reading.

A build hashes the model and writes the plan once; the report records each file's stamp beside
the hash. While a file's stamp is the recorded one, the recorded hash stands, so an up-to-date
check of a 1 GB model reads no byte of it. A changed stamp (an edit, a copy, a `touch`) means
the contents are hashed again: a touched file with the same bytes is still up to date.
"""

from __future__ import annotations

import os
from pathlib import Path

from trtc.spec.model import Spec

Stamp = list[int]  # [size, mtime_ns, inode]


def stamp(path: Path) -> Stamp | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns, status.st_ino]


def stamps(paths: list[Path]) -> dict[str, Stamp]:
    """Stamps of `paths`, by path text; a file that cannot be read has none."""
    return {str(path): found for path in paths if (found := stamp(path)) is not None}


def unchanged(recorded: object, paths: list[Path], spec: Spec) -> bool:
    """Whether every path still has the stamp `recorded` (from an old report: any shape) gives;
    the report names files relative to the spec's folder."""
    if not isinstance(recorded, dict) or not paths:
        return False
    return all(recorded.get(portable_path(path, spec)) == stamp(path) for path in paths)


def portable_path(path: Path, spec: Spec) -> str:
    """`path` as a report records it: relative to the spec's folder, with '/' (reports are
    committed and compared across machines), or absolute when it is on another drive."""
    base = spec.source.parent if spec.source else Path.cwd()
    try:
        return os.path.relpath(path, base).replace(os.sep, "/")
    except ValueError:  # another drive (Windows)
        return str(path)

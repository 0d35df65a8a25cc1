"""One writer per plan: an advisory lock keyed by the plan's absolute path. Lock files live in the
temp folder, never beside the outputs, and are never deleted (deleting a lock file races with a
process that is about to lock it)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator


def lock_path(plan: Path) -> Path:
    key = hashlib.sha256(str(plan.resolve()).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"trtc-locks-{os.getuid()}" / f"{key}.lock"


@contextlib.contextmanager
def plan_lock(plan: Path, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the plan's lock for the block; `on_wait` is told once when another process holds it."""
    path = lock_path(plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(f"waiting for another trtc process that is writing {plan} (lock {path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

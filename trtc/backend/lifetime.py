"""TensorRT objects are freed in order when their work ends, never by Python's cyclic collector.

TensorRT-RTX holds an internal mutex while it creates a builder and calls the Python logger
under it. If the cyclic collector runs inside that callback and frees an older builder that only
a reference cycle kept alive (an exception's traceback frame is the usual one), the older
builder's destructor waits for the same mutex and the process hangs for good; no signal can
interrupt it. So:
- every TensorRT object belongs to a `TensorRTScope`, which drops them newest first when the
  block ends, success or failure;
- the frames of an exception leaving the scope are cleared, so its traceback holds no builder,
  network or parser of finished calls;
- automatic collection is off while any scope is open, so it cannot run inside a callback.
"""

from __future__ import annotations

import gc
import threading
import traceback
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_open_scopes = 0
_collector_was_enabled = False


class TensorRTScope:
    """Owns the TensorRT objects of one task (parse, build, deserialize).

    Code inside the block must keep TensorRT objects only in the scope, or in locals of a
    function that has returned by the time the block ends: a local of the frame that holds the
    `with` statement outlives the block in a traceback.
    """

    def __init__(self) -> None:
        self._objects: list[object] = []

    def keep(self, obj: T) -> T:
        self._objects.append(obj)
        return obj

    def __enter__(self) -> TensorRTScope:
        _pause_collector()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if tb is not None:
            # Frames of calls that have returned; the one running the `with` is skipped.
            traceback.clear_frames(tb)
        try:
            while self._objects:
                self._objects.pop()  # the parser before its network, the logger last
        finally:
            _resume_collector()


def _pause_collector() -> None:
    global _open_scopes, _collector_was_enabled
    with _lock:
        if _open_scopes == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _open_scopes += 1


def _resume_collector() -> None:
    global _open_scopes
    with _lock:
        _open_scopes -= 1
        if _open_scopes == 0 and _collector_was_enabled:
            gc.enable()

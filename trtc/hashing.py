"""SHA-256 of files and buffers, as the fingerprint, the model loader and the plan writer take it:
streamed from disk, or in a thread beside the caller."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path


def hash_files(paths: list[Path], digest=None) -> str:
    """SHA-256 over the files' contents in order, streamed (models can be gigabytes); `digest`
    continues a hash of what came before them."""
    digest = hashlib.sha256() if digest is None else digest
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class HashingBeside:
    """The SHA-256 of `data`, computed in a thread while the caller goes on (hashlib lets go of
    the GIL over large buffers); `finish()` waits for it and returns the hash object."""

    def __init__(self, data: bytes | memoryview) -> None:
        self._digest = hashlib.sha256()
        self._thread = threading.Thread(target=self._digest.update, args=(data,), name="trtc-hash", daemon=True)
        self._thread.start()

    def finish(self):
        self._thread.join()
        return self._digest

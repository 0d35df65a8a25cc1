"""Specs that passed schema validation before. Importing jsonschema costs a no-op build a fifth
of its time, and validation is a pure function of the document, the schema and trtc's version:
a marker file per digest in trtc's private per-user folder says it passed. Any problem reading
or writing a marker means validating again, never an error."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from trtc import __version__


def digest(document, schema: dict) -> str | None:
    """None when the document has no canonical JSON form (e.g. keys of mixed types)."""
    try:
        text = json.dumps([__version__, schema, document], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def marker(key: str) -> Path:
    from trtc.incremental.lock import lock_folder

    return lock_folder() / f"valid-{key[:40]}"


def validated_before(key: str | None) -> bool:
    if key is None:
        return False
    from trtc.errors import TrtcError
    from trtc.incremental.lock import lock_folder, private_folder

    try:
        private_folder(lock_folder())  # a marker counts only in a folder no one else can write to
        return marker(key).read_text() == key
    except (OSError, UnicodeDecodeError, TrtcError):
        return False


def remember_valid(key: str | None) -> None:
    if key is None:
        return
    from trtc.errors import TrtcError
    from trtc.incremental.lock import lock_folder, private_folder

    try:
        private_folder(lock_folder())  # refuses a folder another user could have planted markers in
        path = marker(key)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(key)
        os.replace(temporary, path)
    except (OSError, TrtcError):
        pass

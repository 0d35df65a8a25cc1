"""All-or-nothing output: files are written to temporary names beside their targets and renamed
into place only when the whole build succeeded. A failed or interrupted build leaves the output
folders as they were, including folders it would have created. Once SIGINT or SIGTERM arrived, no
file is staged and no commit starts; a commit that started finishes (trtc/interrupts.py)."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Callable

from trtc import interrupts
from trtc.errors import UsageError

_UMASK = os.umask(0)
os.umask(_UMASK)
_committed: list[Path] = []  # every file this process renamed into place


def committed() -> list[Path]:
    """The outputs this command has written so far (an interrupted run says which)."""
    return list(_committed)


def forget_committed() -> None:
    """A new command starts: what an earlier one in this process wrote is not its own."""
    _committed.clear()


class StagedOutputs:
    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final)
        self._pending: list[Callable[[], Path]] = []  # writes in threads, not waited for yet
        self._writers: list[threading.Thread] = []
        self._created_dirs: list[Path] = []

    def write(self, path: Path, data: bytes | memoryview | str) -> Path:
        """Stage `data` for `path`; returns the temporary file, which becomes `path` unchanged
        (same inode and modification time) on commit."""
        handle, temporary = self._stage(path)
        error = _fill(handle, data)
        if error is not None:
            self._failed(path, error)
        return temporary

    def write_beside(self, path: Path, data: bytes | memoryview) -> Callable[[], Path]:
        """`write`, with the data written by a thread while the caller goes on (a file write lets
        go of the GIL): a plan of hundreds of MB is written while the report is made. Calling the
        result waits for the write and returns what `write` does; `commit` waits for it too."""
        handle, temporary = self._stage(path)
        errors: list[OSError] = []

        def fill() -> None:
            error = _fill(handle, data)
            if error is not None:
                errors.append(error)

        writer = threading.Thread(target=fill, name="trtc-write", daemon=True)
        with interrupts.atomic():  # known to `discard` and started in one step
            self._writers.append(writer)
            writer.start()

        def written() -> Path:
            writer.join()
            if errors:
                self._failed(path, errors[0])
            return temporary

        self._pending.append(written)
        return written

    def _stage(self, path: Path) -> tuple[int, Path]:
        """A new temporary file beside `path`, known to `discard`: its descriptor and path."""
        try:
            with interrupts.atomic():  # staged and known to an interrupt's forced exit in one step
                interrupts.on_forced_exit(self.discard)
                self._make_parent(path.parent)
                handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
                self._staged.append((Path(temporary), path))
        except OSError as exc:
            raise UsageError(
                f"output: cannot write {path}: {exc.strerror}; choose another path under output: in the spec"
            ) from None
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get ordinary permissions
        return handle, Path(temporary)

    def _failed(self, path: Path, exc: OSError) -> None:
        """A full disk, a file-size limit: nothing is committed, the staged files go."""
        self.discard()
        raise UsageError(
            f"output: cannot write {path}: {exc.strerror or exc}; free space or choose another path "
            "under output: in the spec"
        ) from None

    def commit(self) -> None:
        while self._pending:
            self._pending.pop(0)()
        with interrupts.atomic():  # all renamed or, once a signal arrived, none
            for temporary, final in self._staged:
                os.replace(temporary, final)
                _committed.append(final)
            self._staged.clear()
            self._created_dirs.clear()
            interrupts.forget(self.discard)

    def discard(self) -> None:
        """Also called by the forced exit of an interrupt, from another thread: it works on copies.
        Writes under way in threads end first (not every system removes a file being written)."""
        with interrupts.cleaning_up():
            interrupts.forget(self.discard)
            for writer in list(self._writers):
                if writer.ident is not None:  # a writer never started has nothing to finish (join would raise)
                    writer.join()
            for temporary, _ in list(self._staged):
                temporary.unlink(missing_ok=True)
            self._staged.clear()
            for folder in reversed(list(self._created_dirs)):
                try:
                    folder.rmdir()
                except OSError:
                    pass  # something else put a file there meanwhile: leave it
            self._created_dirs.clear()

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Commit is explicit; leaving the block without it (an error, Ctrl-C) discards.
        self.discard()

    def _make_parent(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for new_folder in reversed(missing):
            new_folder.mkdir()
            self._created_dirs.append(new_folder)


def _fill(handle: int, data: bytes | memoryview | str) -> OSError | None:
    """Write `data` to the open file `handle` and close it; the error, if any. A file name that is
    no UTF-8 (Linux names are bytes) is written as its own bytes."""
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
    except OSError as exc:
        return exc
    return None

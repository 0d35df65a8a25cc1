"""One writer per plan: a lock keyed by the plan's absolute path, held by the operating system
(released when the process dies, however it dies): flock on POSIX, called directly as `filelock`
calls it (whose imports cost 40-80 ms of every build), and `filelock`'s msvcrt lock on Windows.
Lock files live in a private per-user folder, never beside the outputs, and are never deleted
(deleting a lock file races with a process that is about to lock it).

The folder is in the shared temp folder, where another user may have put something first: it is
created without following links, and refused unless it is a real folder of ours that no one
else can write to."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from trtc.errors import UsageError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def lock_folder() -> Path:
    user = os.getuid() if hasattr(os, "getuid") else None  # Windows: the temp folder is the user's own
    return Path(tempfile.gettempdir()) / (f"trtc-locks-{user}" if user is not None else "trtc-locks")


def lock_path(plan: Path) -> Path:
    key = hashlib.sha256(os.fsencode(plan.resolve())).hexdigest()[:24]
    return lock_folder() / f"{key}.lock"


def private_folder(folder: Path) -> Path:
    """`folder`, created private when missing; one line when it is not safe to use."""
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UsageError(
            f"cannot create trtc's lock folder {folder}: {exc.strerror}; check the temp folder (TMPDIR)"
        ) from None
    status = os.lstat(folder)  # lstat: a link planted there is not followed
    problem = None
    if stat.S_ISLNK(status.st_mode) or not stat.S_ISDIR(status.st_mode):
        problem = "is not a folder (a link or a file)"
    elif hasattr(os, "getuid") and status.st_uid != os.getuid():
        problem = f"belongs to another user (uid {status.st_uid})"
    elif hasattr(os, "getuid") and status.st_mode & 0o022:
        problem = "can be written by other users"
    if problem:
        raise UsageError(f"trtc's lock folder {folder} {problem}; remove it, or point TMPDIR at a folder of your own")
    return folder


@contextlib.contextmanager
def plan_lock(plan: Path, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the plan's lock for the block; `on_wait` is told once when another process holds it."""
    private_folder(lock_folder())
    path = lock_path(plan)
    hold = _flock if fcntl is not None else _filelock
    with hold(path, lambda: on_wait(f"waiting for another trtc process that is writing {plan} (lock {path})")):
        yield


@contextlib.contextmanager
def _flock(path: Path, waiting: Callable[[], None]) -> Iterator[None]:
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise UsageError(
            f"cannot open trtc's lock file {path}: {exc.strerror}; remove it, or point TMPDIR at a folder of your own"
        ) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # which releases the lock


@contextlib.contextmanager
def _filelock(path: Path, waiting: Callable[[], None]) -> Iterator[None]:
    from filelock import FileLock, Timeout  # here: `trtc check` and spec loading need no lock

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        waiting()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()

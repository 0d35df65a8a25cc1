"""Ctrl-C (SIGINT) and SIGTERM stop a build within about a second, wherever it is, and leave the
outputs as they were.

Python runs signal handlers in the main thread between bytecodes only, and a build spends most of
its time where that does not happen soon or does harm: TensorRT's builder runs native code for
seconds without calling Python, onnxruntime's `run` does the same, and an exception raised in a
Python callback that TensorRT calls (its logger) is swallowed by the C++ frames around it. So:

- the handler records the signal and raises `Interrupted` only outside `deferred()` blocks (those
  around TensorRT); code that owns a native call asks `requested()` (TensorRT's progress monitor
  then cancels the build) or calls `check()` when it returns;
- a watcher thread, woken by the byte Python's C-level handler writes to a wakeup socket, stops
  what can be stopped from outside (onnxruntime runs, through `stoppable`) and, when the main
  thread has not taken the interrupt in hand (`acknowledge()`) within GRACE_SECONDS (TensorRT in a
  long native step), runs the registered cleanups, says goodbye and ends the process itself;
- `atomic()` blocks (creating and committing outputs) do not start once a signal arrived, and the
  watcher waits for their end: the outputs are all renamed into place or none is.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import sys
import threading
from typing import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_SECONDS = 0.75


class Interrupted(KeyboardInterrupt):
    """The build was stopped by a signal; the process exits 128 + its number (130, 143)."""

    def __init__(self, signal_number: int):
        super().__init__(signal_number)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number
        self.signal_name = signal.Signals(signal_number).name


_received: int | None = None  # the first signal
_raised = False  # the handler raised Interrupted once; later signals only wait for the exit
_deferring = 0
_lock = threading.RLock()  # held by atomic() blocks and by the watcher's forced exit
_acknowledged = threading.Event()
_stoppers: set[Callable[[], None]] = set()
_cleanups: set[Callable[[], None]] = set()
_farewell: Callable[[int], None] = lambda signal_number: None


def requested() -> int | None:
    """The number of the signal that asked the build to stop, or None."""
    return _received


def check() -> None:
    global _raised
    if _received is not None:
        _raised = True  # later signals must not cut the unwinding short
        raise Interrupted(_received)


def acknowledge() -> None:
    """The main thread has the interrupt in hand and is ending in order: the watcher stands down."""
    _acknowledged.set()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A block in which a signal is recorded but not raised (Python code that native code calls
    back must not see an exception); callers check `requested()` inside and `check()` after."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1


def deferring(function: Callable) -> Callable:
    """`function` runs in a `deferred()` block; a signal that arrived meanwhile is raised after it."""

    @functools.wraps(function)
    def deferring_call(*args, **kwargs):
        with deferred():
            result = function(*args, **kwargs)
        check()
        return result

    return deferring_call


@contextlib.contextmanager
def atomic() -> Iterator[None]:
    """A block that does not start once a signal arrived and that no signal cuts short; a signal
    that arrives inside it is raised at its end."""
    with _lock:
        check()
        with deferred():
            yield
    check()


@contextlib.contextmanager
def stoppable(stop: Callable[[], None]) -> Iterator[None]:
    """`stop` (e.g. setting onnxruntime's RunOptions.terminate) is called from the watcher when a
    signal arrives during the block, so that a native call returns early."""
    _stoppers.add(stop)
    try:
        if _received is not None:
            stop()
        yield
    finally:
        _stoppers.discard(stop)


def cleaning_up() -> contextlib.AbstractContextManager:
    """The lock a forced exit holds while it runs the cleanups. A cleanup that a thread runs
    itself holds it too, so the exit neither skips it half done (it was forgotten first, its
    files not yet removed) nor runs beside it."""
    return _lock


def on_forced_exit(cleanup: Callable[[], None]) -> None:
    """`cleanup` (removing temporary files) runs if the watcher has to end the process, until `forget`."""
    _cleanups.add(cleanup)


def forget(cleanup: Callable[[], None]) -> None:
    _cleanups.discard(cleanup)


@contextlib.contextmanager
def cleanup_on_forced_exit(cleanup: Callable[[], None]) -> Iterator[None]:
    on_forced_exit(cleanup)
    try:
        yield
    finally:
        forget(cleanup)


@contextlib.contextmanager
def temporary_folder(prefix: str, files: dict[str, bytes]) -> Iterator[str]:
    """A temporary folder holding `files` (name -> content), removed at the end of the block or by
    the exit of a process that ends without unwinding this thread. It is made, filled and known
    to that exit in one step, under the lock the exit holds until the process ends: an exit's
    cleanup never meets a folder half made or still being written (it then stayed behind)."""
    import shutil
    import tempfile

    with _lock:
        folder = tempfile.mkdtemp(prefix=prefix)
        remove = functools.partial(shutil.rmtree, folder, ignore_errors=True)
        on_forced_exit(remove)
        for name, content in files.items():
            with open(os.path.join(folder, name), "wb") as file:
                file.write(content)
    try:
        yield folder
    finally:
        with _lock:  # an exit beginning meanwhile waits for the folder to be gone
            remove()
            forget(remove)


@contextlib.contextmanager
def blocked() -> Iterator[None]:
    """SIGINT and SIGTERM held back during the block; a process started inside it inherits them
    blocked until `handling` unblocks them, so a worker is never stopped before its handlers exist."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks; a worker just starts
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def handling(farewell: Callable[[int], None]) -> Iterator[None]:
    """Handle SIGINT and SIGTERM as described above for the block. `farewell(signal_number)` runs
    before a forced exit (the CLI says what was written). An exception that leaves the block after
    a signal leaves it as `Interrupted`. Outside the main thread (an in-process test runner's
    worker thread) signals cannot be handled and the block runs as it is."""
    global _farewell, _received, _raised
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    reader.setblocking(True)
    writer.setblocking(False)
    previous = {
        signum: signal.signal(signum, _on_signal) or signal.SIG_DFL for signum in SIGNALS
    }  # None: set outside Python
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    _farewell, _received, _raised = farewell, None, False
    _acknowledged.clear()
    watcher = threading.Thread(target=_watch, args=(reader,), name="trtc-interrupts", daemon=True)
    watcher.start()
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    try:
        yield
    except Exception as error:
        if _received is not None:  # a failure that follows a signal (a terminated onnxruntime run) is the interrupt
            raise Interrupted(_received) from error
        raise
    finally:
        with _lock:  # whatever leaves the block is the caller's to handle: the watcher stands down
            _acknowledged.set()
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        writer.close()  # the watcher reads end of file and returns
        watcher.join(timeout=1.0)
        reader.close()
        _received, _raised = None, False  # handled; an in-process caller (a test runner) goes on afresh


def _on_signal(signum: int, frame) -> None:
    global _received, _raised
    if _received is None:
        _received = signum
    if not _raised and not _deferring:
        _raised = True
        raise Interrupted(_received)


def _watch(reader: socket.socket) -> None:
    global _received
    while True:
        try:
            data = reader.recv(64)
        except OSError:
            return
        if not data:
            return
        signals = [number for number in data if number in SIGNALS]
        if not signals:
            continue
        if _received is None:
            _received = signals[0]
        signal_number = _received
        for stop in list(_stoppers):
            try:
                stop()
            except Exception:  # noqa: BLE001 - stopping early is an optimisation; the exit below is the guarantee
                pass
        if not _acknowledged.wait(GRACE_SECONDS):
            _force_exit(signal_number)
        return


def clean_up_at_exit() -> None:
    """The cleanups of work still unfinished when the process ends without unwinding its threads
    (trtc/entry.py): e.g. the temporary folder of an onnxruntime session still loading beside
    TensorRT's build when an interrupted build returned. The lock stays held until the process
    ends, so that no thread makes a new folder after its cleanup ran."""
    _lock.acquire()
    _run_cleanups()


def _run_cleanups() -> None:
    for cleanup in list(_cleanups):
        try:
            cleanup()
        except Exception:  # noqa: BLE001 - remove what can be removed
            pass


def _force_exit(signal_number: int) -> None:
    """The main thread is stuck in native code: clean up after it and end the process."""
    with _lock:
        if _acknowledged.is_set():  # it came free just now
            return
        _run_cleanups()
        # Saying goodbye may block (the main thread holds the console's lock, stderr is a full
        # pipe): it gets half a second.
        speaker = threading.Thread(target=_say_farewell, args=(signal_number,), daemon=True)
        speaker.start()
        speaker.join(0.5)
        os._exit(128 + signal_number)


def _say_farewell(signal_number: int) -> None:
    try:
        _farewell(signal_number)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass

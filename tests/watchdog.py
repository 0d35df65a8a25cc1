"""A watchdog that ends a test run stuck in native code, with every thread's stack printed.

pytest-timeout's thread method needs the GIL to act, and a thread blocked on a TensorRT mutex
inside a Python callback holds it: the run would hang until CI's own limit. faulthandler's timer
is a C thread that needs no GIL, so it prints the stacks and exits. It fires a little after
pytest-timeout would have, leaving the Python-level hangs to the nicer report.
"""

from __future__ import annotations

import faulthandler
import os
import sys

import pytest

_stderr_copy: int | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _stderr_copy
    # Taken before output capture redirects file descriptor 2 for the tests.
    _stderr_copy = os.dup(sys.__stderr__.fileno())


def _seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    option = item.config.getoption("timeout", None)
    return float(option if option is not None else item.config.getini("timeout") or 300)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    seconds = _seconds(item)
    if seconds > 0 and _stderr_copy is not None:
        faulthandler.dump_traceback_later(seconds * 1.2 + 5, exit=True, file=_stderr_copy)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()

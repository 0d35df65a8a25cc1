"""A TensorRT logger that keeps every message instead of printing: the `Layers:` message is the
fusion map, errors go into trtc's own one-line messages, and all of it into the build log."""

from __future__ import annotations


def capturing_logger(lib):
    names = {severity: str(severity).rsplit(".", 1)[-1] for severity in lib.ILogger.Severity.__members__.values()}

    class CapturingLogger(lib.ILogger):
        def __init__(self):
            lib.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity, message):
            # Called thousands of times per build, holding the GIL while TensorRT waits.
            self.messages.append((names.get(severity) or str(severity).rsplit(".", 1)[-1], message))

    return CapturingLogger()


def last_error(messages: list[tuple[str, str]]) -> str:
    errors = [msg for sev, msg in messages if sev in ("ERROR", "INTERNAL_ERROR")]
    return clean(errors[-1]) if errors else "no error message from TensorRT (see the build log)"


def clean(text: str) -> str:
    """One line: TensorRT messages carry newlines and runs of spaces."""
    return " ".join(text.split())

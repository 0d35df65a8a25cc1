"""The observers the commands hand their steps: one that keeps every warning it shows, for the
report, and one that shows nothing."""

from __future__ import annotations


class Quiet:
    """For a second pass over steps whose messages were already given, or a command that shows
    no build stages."""

    def stage(self, name: str) -> None:
        pass

    def warning(self, text: str) -> None:
        pass

    def progress(self, label: str, done: int, total: int) -> None:
        pass


class Recording:
    """Shows each warning once through `shown` and keeps it, in the order shown: the report's
    warnings are exactly what the user saw. Everything else goes to `shown` as it is."""

    def __init__(self, shown=None):
        self._shown = shown if shown is not None else Quiet()
        self.warnings: list[str] = []

    def warning(self, text: str) -> None:
        if text in self.warnings:  # a step run again (a repaired build) says nothing new
            return
        self.warnings.append(text)
        self._shown.warning(text)

    def __getattr__(self, name: str):
        return getattr(self._shown, name)


def recording(observer) -> Recording:
    return observer if isinstance(observer, Recording) else Recording(observer)

"""trtc's channel to people: stderr lines, warnings, errors and the live progress display. rich
(a tenth of a no-op build's time to import) comes in only once something needs it: markup, a
live display on a terminal, or a table; a plain line before that is written as it is."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from trtc.errors import TrtcError

# Build phases deeper than this are too brief and too many to show as lines in a log.
_PLAIN_PHASE_DEPTH = 1


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class Terminal:
    def __init__(self, quiet: bool = False, verbose: bool = False):
        # NO_COLOR (no-color.org): no colour, no styles, no live progress; plain lines as in a log.
        self.plain = bool(os.environ.get("NO_COLOR"))
        self.quiet = quiet
        self.verbose = verbose and not quiet

    @functools.cached_property
    def console(self):
        from rich.console import Console

        return Console(
            stderr=True, highlight=False, emoji=False, soft_wrap=True, color_system=None if self.plain else "auto"
        )

    @property
    def interactive(self) -> bool:
        return sys.stderr.isatty() and not self.plain

    def info(self, text: str) -> None:
        if self.quiet:
            return
        if "console" in self.__dict__:  # rich may be showing a live display: print through it
            self.console.print(escape(text))
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def warning(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(text)}")

    def error(self, error: TrtcError) -> None:
        self.console.print(f"[bold red]error:[/] {escape(error.message)}")
        for line in error.details:
            self.console.print(f"  {escape(line)}")

    def progress(self) -> "BuildProgress":
        return BuildProgress(self)


class BuildProgress:
    """Pipeline observer: stages and TensorRT phases as a live display on a terminal (started at
    the first stage: an up-to-date build shows none), plain lines elsewhere (CI logs)."""

    def __init__(self, terminal: Terminal):
        self.terminal = terminal
        self._depth: dict[str, int] = {}
        self._tasks: dict[str, int] = {}
        self._live = None
        self._wanted = terminal.interactive and not terminal.quiet
        self._entered = False

    def __enter__(self) -> "BuildProgress":
        self._entered = True
        return self

    def __exit__(self, *exc) -> None:
        self._entered = False
        if self._live:
            self._live.stop()
            self._live = None

    def _display(self):
        if self._live is None and self._wanted and self._entered:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._live = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=self.terminal.console,
                transient=True,
            )
            self._live.start()
        return self._live

    def stage(self, name: str) -> None:
        self._display()
        self.terminal.info(f"trtc: {name}")

    def warning(self, text: str) -> None:
        self.terminal.warning(text)

    def progress(self, label: str, done: int, total: int) -> None:
        """Work trtc does itself (calibration): a bar on a terminal, nothing in logs."""
        if self._display():
            if label not in self._tasks:
                self._tasks[label] = self._live.add_task(escape(label), total=total)
            self._live.update(self._tasks[label], completed=min(done, total))

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        depth = self._depth.get(parent, -1) + 1 if parent else 0
        self._depth[name] = depth
        if self._display():
            self._tasks[name] = self._live.add_task("  " * depth + escape(name), total=max(steps, 1))
        elif depth <= _PLAIN_PHASE_DEPTH:
            self.terminal.info(f"  {'  ' * depth}{name}")

    def phase_step(self, name: str, step: int) -> None:
        if self._display() and name in self._tasks:
            self._live.update(self._tasks[name], completed=step + 1)

    def phase_finish(self, name: str) -> None:
        if self._display() and name in self._tasks:
            self._live.remove_task(self._tasks.pop(name))


def print_up_to_date(terminal: Terminal, result) -> None:
    plan = (result.report or {}).get("build", {}).get("plan", "")  # relative to the spec's folder
    terminal.info(
        f"{result.name}: up to date ({short_path(os.path.normpath(Path(result.spec).parent / plan))}); --force rebuilds"
    )


def short_path(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path

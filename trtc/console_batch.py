"""What trtc prints for a build of several specs at once: each worker's plain progress lines,
prefixed with its spec's name, then one table of the results."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from trtc.terminal import Terminal, short_path


class SpecLinesFor:
    """Picklable factory of per-spec observers for worker processes."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, spec):
        return SpecLines(spec.name, self.quiet)


class SpecLines:
    """Observer for one of several builds running in parallel: plain lines prefixed with the
    spec's name (live bars from several processes would overwrite each other). Picklable: it
    is created in the parent and used in a worker process."""

    def __init__(self, name: str, quiet: bool):
        self.name, self.quiet = name, quiet
        self._terminal: Terminal | None = None

    def __getstate__(self) -> dict:
        return {"name": self.name, "quiet": self.quiet, "_terminal": None}

    @property
    def terminal(self) -> Terminal:
        if self._terminal is None:
            self._terminal = Terminal(quiet=self.quiet)
        return self._terminal

    def stage(self, name: str) -> None:
        self.terminal.info(f"[{self.name}] {name}")

    def warning(self, text: str) -> None:
        self.terminal.warning(f"[{self.name}] {text}")

    def progress(self, label: str, done: int, total: int) -> None:
        pass

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        if parent is None:
            self.terminal.info(f"[{self.name}]   {name}")

    def phase_step(self, name: str, step: int) -> None:
        pass

    def phase_finish(self, name: str) -> None:
        pass


def print_batch_summary(terminal: Terminal, results) -> None:
    """One table for a multi-spec build, then each failure's message."""
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column, justify in (
        ("spec", "left"),
        ("result", "left"),
        ("plan", "right"),
        ("kernels", "right"),
        ("precision", "left"),
        ("time", "right"),
    ):
        table.add_column(column, justify=justify)
    for result in results:
        build = (result.report or {}).get("build", {})
        fusion = (result.report or {}).get("fusion") or {}
        style = {"built": "green", "up to date": "cyan", "failed": "bold red", "interrupted": "yellow"}[result.status]
        plan = f"{build['plan_bytes'] / 1e6:.1f} MB" if "plan_bytes" in build else "-"
        kernels = str(fusion.get("counts", {}).get("kernels", "-"))
        precision = ((result.report or {}).get("precision") or {}).get("mode", "-")
        table.add_row(
            escape(short_path(result.spec)),
            f"[{style}]{result.status}[/]",
            plan,
            kernels,
            precision,
            f"{result.seconds:.1f} s",
        )
    terminal.console.print(table)
    for result in results:
        if result.error:
            label = "[bold red]error:[/] " if result.status == "failed" else ""
            terminal.console.print(f"{label}{escape(result.name)}: {escape(result.error)}")
            for line in result.details:
                terminal.console.print(f"  {escape(line)}")
    if any(result.status == "interrupted" for result in results):  # exactly which outputs changed
        groups = {
            "written": [r.name for r in results if r.written],
            "up to date": [r.name for r in results if r.status == "up to date"],
            "not written": [r.name for r in results if not r.written and r.status != "up to date"],
        }
        terminal.console.print(
            "; ".join(f"{label}: {escape(', '.join(names))}" for label, names in groups.items() if names)
        )

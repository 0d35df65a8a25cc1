"""What every `trtc` command runs inside: a failure or an interrupt becomes one line and its exit
code, `--version` reads package metadata, and --help lists the commands in the order a user meets them."""

from __future__ import annotations

import functools
import signal
import sys
import traceback

import click

from trtc import __version__, interrupts
from trtc.errors import TrtcError
from trtc.report.json_text import strict_json


def reports_errors(command):
    """Turn TrtcError into one line on stderr and its exit code; anything else is a bug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from trtc.outputs import forget_committed
        from trtc.terminal import Terminal

        terminal = Terminal(quiet=kwargs.pop("quiet", False), verbose=kwargs.pop("verbose", False))
        forget_committed()
        try:
            with interrupts.handling(functools.partial(_say_interrupted, terminal, kwargs.get("as_json"))):
                return command(terminal, *args, **kwargs)
        except TrtcError as error:
            terminal.error(error)
            if kwargs.get("as_json"):  # machines get the failure on stdout too, as the one JSON object
                click.echo(
                    strict_json(
                        {
                            "trtc": __version__,
                            "exit_code": error.exit_code,
                            "error": {"message": error.message, "details": error.details},
                        },
                        indent=2,
                    )
                )
            sys.exit(error.exit_code)
        except KeyboardInterrupt as stop:
            sys.exit(_say_interrupted(terminal, kwargs.get("as_json"), getattr(stop, "signal_number", signal.SIGINT)))
        except Exception:  # noqa: BLE001 - an unexpected failure is a trtc bug: show everything
            traceback.print_exc()
            terminal.console.print(
                "[bold red]internal error[/]: this is a trtc bug; please report it with the traceback above"
            )
            sys.exit(1)

    wrapper = click.option("-v", "--verbose", is_flag=True, help="Show more: every kernel, TensorRT's own warnings.")(
        wrapper
    )
    return click.option("-q", "--quiet", is_flag=True, help="Print errors only.")(wrapper)


def _say_interrupted(terminal, as_json: bool, signal_number: int) -> int:
    """Also the last words of a forced exit (trtc/interrupts.py), from its watcher thread."""
    from trtc.commands.build_job import interruption
    from trtc.outputs import committed

    stop = interrupts.Interrupted(signal_number)
    message = interruption(stop, committed())
    terminal.console.show_cursor(True)  # a live progress display hid it
    terminal.console.print(message)
    if as_json:
        click.echo(
            strict_json(
                {"trtc": __version__, "exit_code": stop.exit_code, "error": {"message": message, "details": []}},
                indent=2,
            )
        )
    return stop.exit_code


def print_versions(context: click.Context, _param, value: bool) -> None:
    """trtc and what it builds with, read from package metadata (importing TensorRT costs seconds)."""
    if not value or context.resilient_parsing:
        return
    import importlib.metadata
    import platform

    from trtc.backend.trt_import import backend_identity

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    backend = backend_identity("auto")
    click.echo(
        f"trtc {__version__}\nTensorRT backend: {backend if backend != 'none' else 'none (pip install tensorrt-rtx)'}\n"
        f"onnx {version('onnx')}, onnxruntime {version('onnxruntime')}\nPython {platform.python_version()}"
    )
    context.exit()


class CommandsInOrder(click.Group):
    """Commands in the order a user meets them, not alphabetical."""

    ORDER = ("init", "check", "build", "diff", "inspect", "run", "schema")

    def list_commands(self, context: click.Context) -> list[str]:
        return sorted(
            super().list_commands(context),
            key=lambda name: self.ORDER.index(name) if name in self.ORDER else len(self.ORDER),
        )

"""The `trtc` command: parses arguments, calls the core, renders. No build logic lives here.

Exit codes: 0 ok, 1 build failed, 2 usage or spec error, 3 accuracy gate failed.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from pathlib import Path

import click

from trtc import __version__
from trtc.errors import TrtcError


def _reports_errors(command):
    """Turn TrtcError into one line on stderr and its exit code; anything else is a bug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from trtc.console import Terminal

        terminal = Terminal(quiet=kwargs.get("quiet", False))
        try:
            return command(terminal, *args, **kwargs)
        except TrtcError as error:
            terminal.error(error)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            terminal.console.print("interrupted: nothing was written")
            sys.exit(130)
        except Exception:  # noqa: BLE001 - an unexpected failure is a trtc bug: show everything
            traceback.print_exc()
            terminal.console.print("[bold red]internal error[/]: this is a trtc bug; please report it with the traceback above")
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trtc")
def main() -> None:
    """trtc: compile ONNX models into TensorRT engines, with a fusion and precision report."""


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a spec field, e.g. --set target.optimization_level=3 (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
@click.option("--no-diagnose", is_flag=True, help="On a builder failure, skip bisecting the graph for the culprit node.")
@_reports_errors
def build(terminal, spec: Path, overrides: tuple[str, ...], quiet: bool, no_diagnose: bool) -> None:
    """Build the engine that SPEC (a YAML build spec) describes."""
    from trtc.console import print_summary
    from trtc.pipeline import build as run_build
    from trtc.spec import load_spec

    loaded = load_spec(spec, overrides)
    with terminal.progress() as progress:
        outcome = run_build(loaded, progress, diagnose=not no_diagnose)
    print_summary(terminal, outcome.report, outcome.written)


@main.command()
@click.argument("plan", type=click.Path(path_type=Path))
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE.npy", help="Input values (default: random at the profile's opt shape).")
@click.option("--iterations", default=10, show_default=True, type=click.IntRange(1), help="Timed executions.")
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]), default="auto", show_default=True)
@_reports_errors
def run(terminal, plan: Path, inputs: tuple[str, ...], iterations: int, backend: str) -> None:
    """Execute PLAN on this machine's GPU and print output shapes and latency (needs a GPU)."""
    from trtc.console import print_run
    from trtc.errors import UsageError
    from trtc.run import run_plan_file

    feeds = {}
    for item in inputs:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--input expects NAME=FILE.npy, got {item!r}")
        feeds[name] = Path(path)
    print_run(terminal, run_plan_file(plan, feeds, backend, iterations))


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--shape", "shapes", multiple=True, metavar="NAME=1x3x224x224", help="Concrete shape of an input (repeatable).")
@click.option("--top", type=click.IntRange(1), default=None, help="Show only the N nodes with the most FLOPs.")
@click.option("--json", "as_json", is_flag=True, help="Print the costs as JSON on stdout.")
@_reports_errors
def inspect(terminal, model: Path, shapes: tuple[str, ...], top: int | None, as_json: bool) -> None:
    """Print FLOPs and memory traffic (MAC) per ONNX node of MODEL, without building."""
    from trtc.console import print_inspection
    from trtc.inspect_model import inspect_model, parse_shapes

    result = inspect_model(model, parse_shapes(shapes))
    if as_json:
        nodes = [{"name": n, "op_type": c.op_type, "flops": c.flops, "bytes_read": c.bytes_read, "bytes_written": c.bytes_written,
                  "known": c.known, "reason": c.reason} for n, c in result.costs.items()]
        click.echo(json.dumps({"model": str(result.model), "shapes": result.shapes, "totals": result.totals, "nodes": nodes}, indent=2))
    else:
        print_inspection(terminal, result, top)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the build spec (for editor completion)."""
    from trtc.spec import spec_schema

    click.echo(json.dumps(spec_schema(), indent=2))

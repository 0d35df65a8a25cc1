"""The `trtc` command: parses arguments, calls the core, renders. No build logic lives here.

Exit codes: 0 ok, 1 build failed, 2 usage or spec error, 3 accuracy gate failed, 4 a `trtc diff --fail-on` threshold crossed,
130 / 143 interrupted by SIGINT / SIGTERM.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from trtc import __version__
from trtc.cli_support import CommandsInOrder, print_versions, reports_errors
from trtc.report.json_text import strict_json


@click.group(
    cls=CommandsInOrder,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog='Shell completion (bash): eval "$(_TRTC_COMPLETE=bash_source trtc)"; zsh_source and fish_source for the others.',
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_versions,
    help="Show the versions of trtc, the TensorRT backend, onnx, onnxruntime and Python.",
)
def main() -> None:
    """trtc: compile ONNX models into TensorRT engines, with a fusion and precision report."""
    if hasattr(signal, "SIGXFSZ"):  # past a file-size limit, a write fails (one line) instead of killing trtc
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@main.command(
    epilog="\b\nExamples:\n  trtc build configs/demo.yaml\n  trtc build a.yaml b.yaml -j 2 --json > builds.json\n  trtc build spec.yaml "
    "--set max_batch=8 --depfile build/spec.d"
)
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="SPEC...")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a spec field, e.g. --set target.optimization_level=3 (repeatable; applies to every SPEC).",
)
@click.option("--force", is_flag=True, help="Rebuild even when plan and report are up to date.")
@click.option(
    "--depfile",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Write a Make dependency file (plan and reports depend on the spec, the model and the data); one SPEC only.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Build up to N specs at once, in separate processes.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as one JSON object on stdout (human output stays on stderr).",
)
@click.option(
    "--no-diagnose", is_flag=True, help="On a builder failure, skip bisecting the graph for the culprit node."
)
@reports_errors
def build(
    terminal,
    specs: tuple[Path, ...],
    overrides: tuple[str, ...],
    force: bool,
    depfile: Path | None,
    jobs: int,
    as_json: bool,
    no_diagnose: bool,
) -> None:
    """Build the engines that SPEC files (YAML build specs) describe; skip those that are up to date.

    Exit codes: 0 built or up to date, 1 build failed, 2 usage or spec error, 3 accuracy gate failed,
    130 / 143 interrupted (Ctrl-C / SIGTERM). With several specs, the exit code is that of the first
    failed spec in argument order.
    """
    from trtc.commands.build_job import FAILED, INTERRUPTED, UP_TO_DATE, JobOptions, failed_result, run_job
    from trtc.commands.step_summary import append_step_summary
    from trtc.errors import TrtcError, UsageError
    from trtc.spec.load import load_spec
    from trtc.spec.preflight import preflight

    if depfile and len(specs) > 1:
        raise UsageError("--depfile takes one SPEC; run trtc build once per spec to get one dependency file each")
    loaded = [load_spec(spec, overrides) for spec in specs]  # every spec error before any build starts
    for each in loaded:
        preflight(each)
    options = JobOptions(force=force, depfile=depfile.resolve() if depfile else None, diagnose=not no_diagnose)
    if len(loaded) == 1:
        from trtc.terminal import print_up_to_date

        try:
            with terminal.progress() as progress:
                results = [run_job(loaded[0], progress, options)]
        except TrtcError as error:
            append_step_summary([failed_result(loaded[0], error)])
            raise
        if results[0].status == UP_TO_DATE:
            print_up_to_date(terminal, results[0])
        elif not terminal.quiet:  # the summary's tables need rich: not imported for -q
            from trtc.console import print_summary

            print_summary(terminal, results[0].report, [Path(p) for p in results[0].written])
    else:
        from trtc.commands.build_many import build_many
        from trtc.console_batch import SpecLinesFor, print_batch_summary

        results = build_many(loaded, options, jobs, SpecLinesFor(terminal.quiet))
        print_batch_summary(terminal, results)
    append_step_summary(results)
    exit_code = next(
        (r.exit_code for r in results if r.status == INTERRUPTED),
        next((r.exit_code for r in results if r.status == FAILED), 0),
    )
    if as_json:
        click.echo(
            strict_json(
                {"trtc": __version__, "exit_code": exit_code, "builds": [r.as_dict() for r in results]}, indent=2
            )
        )
    sys.exit(exit_code)


@main.command(
    epilog="\b\nExamples:\n  trtc diff base.report.json new.report.json\n  trtc diff base.report.json new.report.json --fail-on time=+5% "
    "--fail-on accuracy=-0.001"
)
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="METRIC=[+-]N[%]",
    help="Exit 4 when a metric changes past N, e.g. time=+5%, plan_size=+10%, kernels=+0, accuracy=-0.001 "
    "(metrics: time, plan_size, kernels, flops, mac, accuracy, warnings, build_time; repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the differences as one JSON object on stdout.")
@reports_errors
def diff(terminal, old: Path, new: Path, fail_on: tuple[str, ...], as_json: bool) -> None:
    """Show what changed from the build that wrote OLD (a .report.json) to the one that wrote NEW.

    Exit codes: 0 compared (and no --fail-on threshold crossed), 2 usage error, 4 a threshold crossed.
    """
    from trtc.console import print_diff
    from trtc.report.diff import check_thresholds, diff_reports, enforce_thresholds, load_report, parse_threshold

    thresholds = [parse_threshold(text) for text in fail_on]
    difference = diff_reports(load_report(old), load_report(new))
    crossed = check_thresholds(difference, thresholds)
    if as_json:
        click.echo(strict_json({**difference, "crossed": crossed}, indent=2))
    print_diff(terminal, difference)
    enforce_thresholds(difference, thresholds)


@main.command(
    epilog="\b\nExamples:\n  trtc run build/demo.plan\n  trtc run build/demo.plan --input images=batch.npy --iterations 100"
)
@click.argument("plan", type=click.Path(path_type=Path))
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=FILE.npy",
    help="Input values (default: random at the profile's opt shape).",
)
@click.option("--iterations", default=10, show_default=True, type=click.IntRange(1), help="Timed executions.")
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]), default="auto", show_default=True)
@reports_errors
def run(terminal, plan: Path, inputs: tuple[str, ...], iterations: int, backend: str) -> None:
    """Execute PLAN on this machine's GPU and print output shapes and latency (needs a GPU)."""
    from trtc.commands.run_plan import run_plan_file
    from trtc.console import print_run
    from trtc.errors import UsageError

    feeds = {}
    for item in inputs:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--input expects NAME=FILE.npy, got {item!r}")
        feeds[name] = Path(path)
    print_run(terminal, run_plan_file(plan, feeds, backend, iterations))


@main.command(
    epilog="\b\nExamples:\n  trtc inspect model.onnx --top 10\n  trtc inspect model.onnx --shape images=8x3x224x224 --json"
)
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--shape", "shapes", multiple=True, metavar="NAME=1x3x224x224", help="Concrete shape of an input (repeatable)."
)
@click.option("--top", type=click.IntRange(1), default=None, help="Show only the N nodes with the most FLOPs.")
@click.option("--json", "as_json", is_flag=True, help="Print the costs as JSON on stdout.")
@reports_errors
def inspect(terminal, model: Path, shapes: tuple[str, ...], top: int | None, as_json: bool) -> None:
    """Print FLOPs and memory traffic (MAC) per ONNX node of MODEL, without building."""
    from trtc.commands.inspect_model import inspect_model, parse_shapes
    from trtc.console import print_inspection

    result = inspect_model(model, parse_shapes(shapes))
    if as_json:
        nodes = [
            {
                "name": n,
                "op_type": c.op_type,
                "flops": c.flops,
                "bytes_read": c.bytes_read,
                "bytes_written": c.bytes_written,
                "known": c.known,
                "reason": c.reason,
            }
            for n, c in result.costs.items()
        ]
        # default=str: a cost that is a formula in dynamic dimensions is written as text ("3072*N").
        click.echo(
            strict_json(
                {"model": str(result.model), "shapes": result.shapes, "totals": result.totals, "nodes": nodes},
                indent=2,
                default=str,
            )
        )
    else:
        print_inspection(terminal, result, top)


@main.command(epilog="\b\nExamples:\n  trtc check spec.yaml\n  trtc check spec.yaml --set precision=fp16 --json")
@click.argument("spec", type=click.Path(path_type=Path))
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override a spec field, as for trtc build."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as one JSON object on stdout (human output stays on stderr).",
)
@reports_errors
def check(terminal, spec: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Validate SPEC and run TensorRT's ONNX parser over its model without building.

    Exit codes: 0 every node is supported, 1 the parser refused nodes (each one listed), 2 spec error.
    """
    from trtc.commands.check import check_spec
    from trtc.console import print_check
    from trtc.spec.load import load_spec
    from trtc.spec.preflight import preflight

    loaded = load_spec(spec, overrides)
    preflight(loaded)
    result = check_spec(loaded)
    print_check(terminal, result)
    exit_code = 0 if result.supported else 1
    if as_json:
        click.echo(strict_json({"trtc": __version__, "exit_code": exit_code, **result.as_dict()}, indent=2))
    sys.exit(exit_code)


@main.command(epilog="\b\nExamples:\n  trtc init model.onnx -o model.yaml\n  trtc init model.onnx -o - | less")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    metavar="SPEC.yaml",
    help="Where to write the spec (default: <model name>.yaml here; '-' prints it).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing spec file.")
@reports_errors
def init(terminal, model: Path, output: Path | None, force: bool) -> None:
    """Write a commented starter build spec for MODEL (an ONNX file), filled from its inputs and outputs."""
    from trtc.commands.init_spec import write_starter_spec
    from trtc.console import print_init

    starter = write_starter_spec(model, output, force)
    if starter.path is None:
        click.echo(starter.text, nl=False)
    print_init(terminal, starter)


@main.command(
    epilog="\b\nExamples:\n  trtc schema -o trtc.schema.json\n  trtc schema --markdown > docs/spec-reference.md"
)
@click.option("--markdown", is_flag=True, help="Print the spec reference as Markdown instead (docs/spec-reference.md).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Write to FILE instead of printing (e.g. trtc.schema.json, which `trtc init` points editors at).",
)
@reports_errors
def schema(terminal, markdown: bool, output: Path | None) -> None:
    """Print the JSON Schema of the build spec (for editor completion)."""
    from trtc.spec.docs import reference_markdown, schema_text

    text = reference_markdown() if markdown else schema_text()
    if output is None:
        click.echo(text, nl=False)
        return
    from trtc.outputs import StagedOutputs

    with StagedOutputs() as staged:
        staged.write(output.resolve(), text)
        staged.commit()
    terminal.info(f"wrote {output}")

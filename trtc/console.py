"""Everything trtc prints for people beyond single lines (trtc/terminal.py): the build summary,
tables, diffs, inspections. Machine output (JSON, schema) goes to stdout through plain
`click.echo` in the CLI."""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from trtc.report.units import build_time, fusion_effect, human, per_profile_note, savings, without_kernel
from trtc.terminal import BuildProgress, Terminal, print_up_to_date, short_path  # noqa: F401 - the renderers' home


def print_summary(terminal: Terminal, report: dict, written: list[Path]) -> None:
    if terminal.quiet:
        return
    build = report["build"]
    console = terminal.console
    console.print(
        f"[green]built[/] {escape(short_path(str(written[0])) if written else build['plan'])} ({build['plan_bytes'] / 1e6:.1f} MB) in "
        f"{escape(build_time(build))} with {build['backend']} {build['backend_version']}"
    )
    fusion = report.get("fusion")
    if fusion:
        counts = fusion["counts"]
        precisions = escape(", ".join(f"{dtype} {n}" for dtype, n in fusion["precisions"].items()))
        console.print(
            f"  {counts['onnx_nodes']} ONNX nodes -> {counts['kernels']} kernels ({counts['fused_kernels']} fused); "
            f"kernel precision: {precisions}{escape(per_profile_note(counts))}"
        )
        if without_kernel(fusion):
            console.print(f"  {escape(without_kernel(fusion))}")
        console.print(_kernel_table(fusion, None if terminal.verbose else _KERNELS_SHOWN))
        if terminal.verbose:
            _print_tensorrt_warnings(terminal, written)
    passes = report.get("passes")
    if passes and passes["totals"]["changes"]:
        by_pass = ", ".join(f"{p['pass']} {p['changes']}" for p in passes["passes"] if p["changes"])
        console.print(
            f"  graph passes: {passes['totals']['changes']} changes ({by_pass}); "
            f"{savings(passes['totals']['flops_saved'], passes['totals']['mac_saved'])} at the opt shapes"
        )
    cost = report.get("cost")
    if cost and cost["mac_saved_percent"] is not None:
        given = cost.get("onnx_model", cost["before_fusion"])["mac_bytes"]
        line = (
            f"  memory traffic at the opt shapes: {human(given, 'B')} as given -> "
            f"{human(cost['before_fusion']['mac_bytes'], 'B')} after passes and precision -> "
            f"{human(cost['after_fusion']['mac_bytes'], 'B')} after fusion ({fusion_effect(cost['mac_saved_percent'])})"
        )
        if cost.get("gpu") and cost["estimated_total_us"] is not None:
            basis = (cost.get("basis") or {}).get("time", {}).get("from") or f"a roofline of the {cost['gpu']['name']}"
            line += f"; estimated time {cost['estimated_total_us']:.1f} us (not measured: from {basis})"
        console.print(line)
    elif cost and cost.get("unresolved_kernels"):
        console.print(
            f"  memory traffic after fusion unknown: {len(cost['unresolved_kernels'])} kernel(s) have dynamic sizes "
            f"trtc cannot resolve (see the report)"
        )
    precision, accuracy = report.get("precision", {}), report.get("accuracy")
    calibration = report.get("calibration")
    if calibration:
        console.print(
            f"  {calibration['mode']}: {len(calibration['quantized_layers'])} layers quantized ({calibration['method']} calibration on "
            f"{calibration['samples']} samples of {escape(calibration['data'])}, cache {calibration['cache']}), "
            f"{len(calibration['not_quantized'])} left in "
            f"{calibration['fallback']}"
            + (_auto_fallback(calibration) if calibration.get("auto_fallback") else "")
            + (f"; {len(precision['kept_fp32'])} kept in FP32" if precision.get("kept_fp32") else "")
        )
    elif precision.get("mode", "fp32") != "fp32":
        kept = precision.get("kept_fp32", {})
        console.print(
            f"  {precision['mode']}: {precision.get('converted_nodes', 0)} nodes converted, {len(kept)} kept in FP32, "
            f"{precision.get('casts_inserted', 0)} casts inserted"
        )
    if accuracy and accuracy.get("status") == "not measured":
        console.print(f"  [bold red]accuracy vs FP32: NOT MEASURED[/] ({escape(accuracy['reason'])})")
    elif accuracy and accuracy["outputs"]:
        worst = min(accuracy["outputs"], key=lambda o: o["cosine"])
        console.print(
            f"  accuracy vs FP32 on {accuracy['samples']} {accuracy['kind']} samples"
            f"{' held out from calibration' if accuracy.get('held_out') else ''}{' (emulated)' if accuracy['emulated'] else ''}: "
            f"{escape(worst['name'])}: cosine {worst['cosine']:.6f} (per sample mean {worst['sample_cosine_mean']:.6f}, "
            f"worst {worst['sample_cosine_worst']:.6f}), rel. L2 {worst['rel_l2_error']:.2e}"
            + ("" if accuracy["passed"] is None else "; gates passed")
        )
    if report.get("warnings"):  # each was printed when it arose; the count stops them being missed
        console.print(f"  [yellow]{len(report['warnings'])} warning(s)[/], printed above and kept in the report")
    others = ", ".join(p.name for p in written[1:])
    console.print(f"  wrote {escape(others)} in {escape(short_path(str(written[1].parent)))}")


def _auto_fallback(calibration: dict) -> str:
    fallback = calibration["auto_fallback"]
    line = f"; auto_fallback kept back {escape(', '.join(fallback['kept_back']))}"
    if fallback.get("quantizable_flops"):
        line += f"; {fallback['quantized_flops'] / fallback['quantizable_flops']:.0%} of the quantizable FLOPs stay {calibration['mode']}"
    return line


# The default output fits one screen for a model of hundreds of kernels; -v and the report have all.
_KERNELS_SHOWN = 12


def _kernel_table(fusion: dict, limit: int | None) -> Table:
    """Every kernel, or the `limit` with the largest estimated time (the most fused ones when no
    kernel has an estimate: no target GPU), in engine order."""
    kernels = fusion["kernels"]
    timed = any(k.get("estimated_us") is not None for k in kernels)
    shown = kernels
    if limit is not None and len(kernels) > limit:
        weight = lambda k: (k.get("estimated_us") or 0.0, len(k["onnx_nodes"]))  # noqa: E731
        chosen = {id(k) for k in sorted(kernels, key=weight, reverse=True)[:limit]}
        shown = [k for k in kernels if id(k) in chosen]
    if shown is kernels:
        title = None
    elif timed:
        title = f"the {len(shown)} kernels with the largest estimated time, of {len(kernels)}"
    else:
        title = (
            f"the {len(shown)} kernels that fuse the most ONNX nodes, of {len(kernels)} "
            "(no time estimate: no target GPU; set target.gpu)"
        )
    title = title and title + "; all with -v and in the report"
    table = Table(title=title, box=None, pad_edge=False, show_edge=False)
    columns = ("#", "kernel type", "precision", "est. µs (estimate)", "ONNX nodes")
    for column in columns if timed else [c for c in columns if not c.startswith("est.")]:
        table.add_column(column, justify="right" if column.startswith("est.") else "left")
    for kernel in shown:
        nodes = ", ".join(kernel["onnx_nodes"]) or "-"
        estimate = f"{kernel['estimated_us']:.2f}" if kernel.get("estimated_us") is not None else "-"
        cells = [str(kernel["index"]), escape(kernel["type"]), escape(kernel["precision"])]
        table.add_row(*cells, *([estimate] if timed else []), escape(nodes))
    return table


def _print_tensorrt_warnings(terminal: Terminal, written: list[Path]) -> None:
    log = next((path for path in written if path.name.endswith(".build.log")), None)
    if log is None or not log.is_file():
        return
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("[WARNING]"):
            terminal.console.print(f"  TensorRT: {escape(line.removeprefix('[WARNING] '))}")


def print_run(terminal: Terminal, result) -> None:
    latencies = sorted(result.latencies_ms)
    median = latencies[len(latencies) // 2]
    terminal.console.print(
        f"ran {len(latencies)} time(s): median {median:.3f} ms, min {latencies[0]:.3f} ms "
        f"(host wall time of enqueue + synchronize)"
    )
    for name, shape in result.input_shapes.items():
        terminal.console.print(f"  input  {escape(name)} {list(shape)}")
    for name, array in result.outputs.items():
        terminal.console.print(
            f"  output {escape(name)} {list(array.shape)} {array.dtype} "
            f"min {array.min():.4g} max {array.max():.4g} mean {array.mean():.4g}"
        )


def print_inspection(terminal: Terminal, result, top: int | None) -> None:
    # A formula ranks by its value with every dynamic dimension at 1.
    magnitude = lambda flops: flops.at({}) if hasattr(flops, "at") else flops  # noqa: E731
    costs = (
        sorted(result.costs.items(), key=lambda item: -magnitude(item[1].flops)) if top else list(result.costs.items())
    )
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column, justify in (("node", "left"), ("op", "left"), ("FLOPs", "right"), ("MAC", "right"), ("", "left")):
        table.add_column(column, justify=justify)
    for name, cost in costs[:top] if top else costs:
        flops = human(cost.flops, "FLOP") if cost.known else "?"
        mac = "?" if not cost.known and not cost.mac_bytes else human(cost.mac_bytes, "B")
        table.add_row(escape(name), escape(cost.op_type), flops, mac, "" if cost.known else escape(cost.reason))
    console = terminal.console
    console.print(table)
    shapes = ", ".join(f"{name}={'x'.join(map(str, shape))}" for name, shape in result.shapes.items())
    totals = result.totals
    symbols = sorted({d for shape in result.shapes.values() for d in shape if isinstance(d, str)})
    if symbols:
        shapes += f" ({', '.join(symbols)}: dynamic, costs are formulas in them; --shape gives values)"
    console.print(
        f"{totals['nodes']} nodes at {escape(shapes)}: {human(totals['flops'], 'FLOP')} (multiply-accumulates), "
        f"{human(totals['mac_bytes'], 'B')} memory traffic before fusion"
    )
    if totals["unknown_nodes"]:
        terminal.warning(
            f"{len(totals['unknown_nodes'])} node(s) of unknown cost (shape or FLOP formula); their FLOPs count as 0: "
            + ", ".join(totals["unknown_nodes"][:5])
        )


def print_check(terminal: Terminal, result) -> None:
    """`trtc check`: the parser's refusals (one line per node), or what was found supported."""
    console = terminal.console
    for warning in result.warnings:
        terminal.warning(warning)
    if result.problems:
        console.print(
            f"[bold red]unsupported:[/] {result.backend}'s ONNX parser refused {len(result.problems)} node(s) of "
            f"{result.onnx_nodes} in {escape(short_path(str(result.spec.model)))}:"
        )
        for problem in result.problems:
            console.print(f"  {escape(problem.describe())}")
        for hint in result.hints:
            console.print(f"  {escape(hint)}")
        return
    if terminal.quiet:
        return
    inputs = ", ".join(f"{name}[{','.join(map(str, dims))}]" for name, dims in result.inputs.items()) or "none"
    console.print(
        f"[green]supported[/]: {escape(result.spec.name)}: {result.backend} parsed all {result.onnx_nodes} ONNX nodes "
        f"into {result.layers} network layers; inputs {escape(inputs)}; outputs {escape(', '.join(result.outputs))}"
    )
    for line in result.checked:
        console.print(f"  {escape(line)}")
    console.print("  not built: graph passes, precision conversion and kernel selection run in trtc build")


def print_init(terminal: Terminal, starter) -> None:
    if starter.path is not None:
        terminal.info(
            f"wrote {short_path(str(starter.path.resolve()))}: {len(starter.inputs)} input(s), {len(starter.outputs)} output(s); "
            f"next: trtc check {shlex.quote(str(starter.path))}"
        )
    if getattr(starter, "schema", None):
        terminal.info(
            f"wrote {short_path(str(starter.schema))}: the JSON Schema the spec's first line points editors at "
            "(YAML language server: completion and checks)"
        )
    for line in starter.dynamic:
        terminal.warning(f"{line}; edit the range in the spec to fit your deployment")


def print_diff(terminal: Terminal, diff: dict) -> None:
    """The comparison; crossed --fail-on thresholds are the error the CLI prints after it."""
    console = terminal.console
    old, new = diff["old"], diff["new"]
    console.print(
        escape(
            f"{old['name']} ({old['precision']}, {old['built_at']}) -> {new['name']} ({new['precision']}, {new['built_at']})"
        )
    )
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column, justify in (("metric", "left"), ("old", "right"), ("new", "right"), ("change", "right")):
        table.add_column(column, justify=justify)
    for key, metric in diff["metrics"].items():
        if metric["old"] is None and metric["new"] is None:
            continue
        change = (
            "-"
            if metric["change"] is None
            else _signed(metric["change"]) + (f" ({metric['percent']:+.1f}%)" if metric["percent"] else "")
        )
        cells = [
            _cosine(metric[side], diff[side]) if key == "accuracy" else _number(metric[side]) for side in ("old", "new")
        ]
        table.add_row(metric["label"], *cells, change)
    console.print(table)
    kernels = diff["kernels"]
    for title, entries in (
        ("kernels only in the new build", kernels["added"]),
        ("kernels only in the old build", kernels["removed"]),
    ):
        if entries:
            console.print(f"{title}:")
            for k in entries:
                extra = f" (+{k['added_by_trtc']} cast/Q/DQ added by trtc)" if k["added_by_trtc"] else ""
                console.print(
                    escape(
                        f"  {k['type']} {k['precision']}: {', '.join(k['onnx_nodes']) or '(no node of the model)'}{extra}"
                    )
                )
    for change in kernels["precision_changed"]:
        console.print(
            escape(
                f"precision {change['old']} -> {change['new']}: {', '.join(change['onnx_nodes']) or '(no node of the model)'}"
            )
        )
    for change in kernels["time_changed"][:5]:
        console.print(
            f"est. time {change['old_us']:.2f} -> {change['new_us']:.2f} "
            f"us: {escape(', '.join(change['onnx_nodes']) or '(no node of the model)')}"
        )
    for entry in diff["accuracy"]:
        if entry["old_cosine"] != entry["new_cosine"]:
            console.print(
                f"accuracy of {escape(entry['output'])}: cosine {_cosine(entry['old_cosine'])} -> {_cosine(entry['new_cosine'])}"
            )
    for warning in diff["warnings"]["added"]:
        console.print(f"new warning: {escape(warning)}")
    if not any((kernels["added"], kernels["removed"], kernels["precision_changed"])):
        console.print(f"same {kernels['unchanged']} kernels, same fusions and precisions")


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else f"{value:,}"


def _cosine(value: float | None, build: dict | None = None) -> str:
    """Cosines that matter differ in the 7th digit: 0.9999998 must not print as 1. An FP32 build's
    1 is not measured: it is the reference."""
    if build and build.get("is_the_fp32_reference"):
        return "1 (FP32 itself)"
    return "-" if value is None else f"{value:.7f}"


def _signed(value) -> str:
    return f"{value:+,}" if isinstance(value, int) else f"{value:+.6g}"

"""Render a report dict as Markdown for people (CI summaries, code review).

Every string that comes from the model, the data, the spec or TensorRT goes through `code` (names)
or `text` (anything else), so that it shows as written and cannot add headings, links, table
cells or rows.
"""

from __future__ import annotations

from trtc.report.accuracy_summary import has_accuracy_summary
from trtc.report.kernel_label import label_parts
from trtc.report.markdown_precision import accuracy_lines, calibration_lines, precision_lines
from trtc.report.markdown_text import code, text
from trtc.report.pass_groups import grouped_changes
from trtc.report.units import (
    PRUNED_BY,
    UNNAMED_WHY,
    build_time,
    fusion_effect,
    human,
    per_profile_note,
    savings,
    without_kernel,
)


def render_markdown(report: dict) -> str:
    build = report["build"]
    fusion = report.get("fusion") or {}
    counts = fusion.get("counts", {})
    lines = [
        f"# trtc build report: {text(build['name'])}",
        "",
        f"Built {code(build['model'])} into {code(build['plan'])} with {build['backend']} {build['backend_version']} "
        f"in {build_time(build, with_outputs=False)} before writing its outputs (trtc {build['trtc']}).",
        "",
        "| fact | value |",
        "| --- | --- |",
        f"| precision | {report['precision']['mode']} |",
        f"| target | {_target(build['target'])} |",
        f"| plan | {build['plan_bytes']:,} bytes, sha256 `{build['plan_sha256'][:16]}` |",
        f"| model sha256 | `{build['model_sha256'][:16]}` |",
        f"| spec fingerprint | `{build['spec_fingerprint'][:16]}` |",
    ]
    if counts:
        lines.append(
            f"| fusion | {counts['onnx_nodes']} ONNX nodes -> {counts['kernels']} kernels "
            f"({counts['fused_kernels']} fused; {without_kernel(fusion) or 'every node in a kernel'})"
            f"{per_profile_note(counts)} |"
        )
    if has_accuracy_summary(report):  # reduced precision: the first question is whether it is still accurate
        lines += accuracy_lines(report.get("accuracy"))
    lines += [
        "",
        "## Inputs and outputs",
        "",
        "| tensor | mode | dtype | shape | profiles (min / opt / max) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for binding in report["bindings"]:
        profiles = "<br>".join(f"{p['min']} / {p['opt']} / {p['max']}" for p in binding["profiles"]) or "-"
        lines.append(
            f"| {code(binding['name'])} | {binding['mode']} | {binding['dtype']} | {binding['dims']} | {profiles} |"
        )
    lines += _pinning(report.get("pinning"))
    if fusion:
        lines += _passes(report.get("passes")) + _cost(report.get("cost"), fusion)
        lines += [
            "",
            "## Fusion map",
            "",
            f"Source: TensorRT's {fusion['source'].replace('-', ' ')}.",
            "",
            "| # | kernel | type | precision | FLOPs | MAC | est. us (roofline) | ONNX nodes |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | --- |",
        ]
        for kernel in fusion["kernels"]:
            nodes = (
                ", ".join(f"{code(n)} ({text(op)})" for n, op in zip(kernel["onnx_nodes"], kernel["onnx_op_types"]))
                or "-"
            )
            estimate = f"{kernel['estimated_us']:.2f}" if kernel.get("estimated_us") is not None else "-"
            lines.append(
                f"| {kernel['index']} | {code(kernel['name'])} | {text(kernel['type'])} | {text(kernel['precision'])} | "
                f"{human(kernel.get('flops'), 'FLOP')} | {human(kernel.get('mac_bytes'), 'B')} | {estimate} | {nodes} |"
            )
        pruned = fusion.get("pruned_nodes", [])
        unnamed = fusion.get("unnamed_nodes", [])
        if fusion["removed_nodes"] or fusion["folded_nodes"] or pruned or unnamed:
            lines += ["", "### ONNX nodes no kernel runs"]
        if pruned:
            lines += ["", "Pruned before the graph passes:", ""] + [
                f"- {code(n['name'])} ({text(n['op_type'])}): {text(PRUNED_BY.get(n['by'], n['by']))}" for n in pruned
            ]
        if fusion["removed_nodes"]:
            lines += ["", "Removed by trtc's graph passes:", ""] + [
                f"- {code(n['name'])} ({text(n['op_type'])}): {n['pass']}" for n in fusion["removed_nodes"]
            ]
        if fusion["folded_nodes"]:
            lines += ["", "Evaluated by TensorRT at build time (no kernel runs them):", ""]
            lines += [f"- {code(n['name'])} ({text(n['op_type'])})" for n in fusion["folded_nodes"]]
        if unnamed:
            lines += ["", f"Run, but named by no kernel ({UNNAMED_WHY}):", ""]
            lines += [f"- {code(n['name'])} ({text(n['op_type'])})" for n in unnamed]
    else:
        lines += ["", "## Fusion map", "", "Not available: TensorRT logged no layer information for this build."]
    lines += calibration_lines(report.get("calibration")) + precision_lines(report.get("precision", {}))
    if report.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {text(w)}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def _pinning(pinning: dict | None) -> list[str]:
    if not pinning:
        return []
    lines = ["", "## Pinned inputs and resolved control flow", ""] + [
        f"- {code(p['input'])} = {text(p['value'])}" for p in pinning["pinned_inputs"]
    ]
    return lines + [_resolved(r) for r in pinning["resolved_control_flow"]]


def _resolved(entry: dict) -> str:
    if entry["op_type"] == "Loop":
        done = "unrolled" if entry["unrolled"] else f"kept as a loop: {text(entry['reason'])}"
        return f"- {code(entry['node'])} (Loop): {entry['trip_count']} iteration(s), {done}"
    proven = f", proven for every shape in the profiles: {text(entry['proven'])}" if entry.get("proven") else ""
    return f"- {code(entry['node'])} ({entry['op_type']}): took the {entry['taken'].replace('_', ' ')}{proven}"


def _passes(passes: dict | None) -> list[str]:
    if not passes or not passes["changes"]:
        return []
    lines = [
        "",
        "## Graph passes",
        "",
        "Changes of one pass with the same note share a row (`;` between changes).",
        "",
        "| pass | changes | nodes before | nodes after | FLOPs before -> after | MAC before -> after | note |",
        "| --- | ---: | --- | --- | --- | --- | --- |",
    ]
    for g in grouped_changes(passes["changes"]):
        before = "; ".join(", ".join(map(code, c["nodes_before"])) for c in g["changes"])
        after = "; ".join(", ".join(map(code, c["nodes_after"])) or "-" for c in g["changes"])
        lines.append(
            f"| {g['pass_name']} | {len(g['changes'])} | {before} | {after} | "
            f"{human(g['flops_before'], 'FLOP')} -> {human(g['flops_after'], 'FLOP')} | "
            f"{human(g['mac_before'], 'B')} -> {human(g['mac_after'], 'B')} | {text(g['note'])} |"
        )
    totals = passes["totals"]
    lines += [
        "",
        f"{totals['changes']} changes removed {totals['nodes_removed']} nodes and "
        f"{savings(totals['flops_saved'], totals['mac_saved'])}.",
    ]
    return lines


def _cost(cost: dict | None, fusion: dict) -> list[str]:
    if not cost:
        return []
    lines = [
        "",
        "## Cost",
        "",
        f"Convention: {cost['convention']}.",
        "",
        "| | FLOPs | memory traffic |",
        "| --- | ---: | ---: |",
        f"| the ONNX model as given (every node) | {human(cost['onnx_model']['flops'], 'FLOP')} "
        f"| {human(cost['onnx_model']['mac_bytes'], 'B')} |",
        "| before fusion (every node of the graph TensorRT parsed, after trtc's passes and precision) "
        f"| {human(cost['before_fusion']['flops'], 'FLOP')} | {human(cost['before_fusion']['mac_bytes'], 'B')} |",
        f"| after fusion (kernel boundaries) | {human(cost['after_fusion']['flops'], 'FLOP')} "
        f"| {human(cost['after_fusion']['mac_bytes'], 'B')} |",
    ]
    if cost.get("unnamed_flops"):
        lines.append(
            f"| of which nodes that no kernel names (they ran: see the fusion map) | {human(cost['unnamed_flops'], 'FLOP')} | |"
        )
    if cost["mac_saved_percent"] is not None:
        lines.append(
            f"| effect of fusion | | {human(abs(cost['mac_saved_bytes']), 'B')}: {fusion_effect(cost['mac_saved_percent'])} |"
        )
    basis = cost.get("basis")
    if basis:
        lines += [
            "",
            f"FLOPs are counted from {text(basis['flops']['from'])}. Memory traffic is counted from {text(basis['mac_bytes']['from'])}.",
        ]
    if cost.get("gpu"):
        gpu = cost["gpu"]
        total = (
            f"{cost['estimated_total_us']:.1f} us in total"
            if cost["estimated_total_us"] is not None
            else "no total (some kernels' sizes are unknown)"
        )
        lines += [
            "",
            f"Estimated time, not measured: {total}, from {text(basis['time']['from']) if basis else 'a roofline'}. "
            f"Peaks from {gpu['source']}. Top kernels by estimated time:",
            "",
        ]
        by_index = {k["index"]: k for k in fusion["kernels"]}
        for index in cost["top_kernels"][:5]:
            kernel = by_index[index]
            lines.append(
                f"- #{index} {_kernel_label(kernel)}: est. {kernel['estimated_us']:.2f} us, {kernel['bound']}-bound "
                f"(TensorRT kernel {code(kernel['name'])}, {text(kernel['type'])}, {text(kernel['precision'])})"
            )
    elif basis:
        lines += ["", f"Time: {text(basis['time']['from'])}."]
    if cost.get("unresolved_kernels"):
        lines += [
            "",
            f"{len(cost['unresolved_kernels'])} kernel(s) have dynamic sizes trtc cannot resolve at the opt shapes "
            f"(TensorRT-internal tensors): their memory traffic, the after-fusion total and their estimated time are unknown.",
        ]
    if cost["unknown_nodes"]:
        lines += [
            "",
            f"{len(cost['unknown_nodes'])} node(s) of unknown cost (shape or FLOP formula) count as 0 FLOPs: "
            + ", ".join(map(code, cost["unknown_nodes"][:10]))
            + ("" if len(cost["unknown_nodes"]) <= 10 else ", ..."),
        ]
    return lines


def _kernel_label(kernel: dict) -> str:
    """'`stem.conv` +2 more': the nodes a kernel covers, by the first one's name."""
    node, rest = label_parts(kernel)
    return code(node) + rest if node is not None else text(rest)


def _target(target: dict) -> str:
    parts = []
    if target.get("compute_capabilities"):
        parts.append("sm " + ", ".join(target["compute_capabilities"]))
    if target.get("optimization_level") is not None:
        parts.append(f"optimization level {target['optimization_level']}")
    return "; ".join(parts) or "builder default"

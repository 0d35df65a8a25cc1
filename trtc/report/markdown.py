"""Render a report dict as Markdown for people (CI summaries, code review)."""

from __future__ import annotations


def render_markdown(report: dict) -> str:
    build = report["build"]
    fusion = report.get("fusion") or {}
    counts = fusion.get("counts", {})
    lines = [
        f"# trtc build report: {build['name']}",
        "",
        f"Built `{build['model']}` into `{build['plan']}` with {build['backend']} {build['backend_version']} "
        f"in {build['build_seconds']:.2f} s (trtc {build['trtc']}).",
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
        lines.append(f"| fusion | {counts['onnx_nodes']} ONNX nodes -> {counts['kernels']} kernels "
                     f"({counts['fused_kernels']} fused, {counts['folded_nodes']} nodes folded at build time) |")
    lines += ["", "## Inputs and outputs", "", "| tensor | mode | dtype | shape | profiles (min / opt / max) |", "| --- | --- | --- | --- | --- |"]
    for binding in report["bindings"]:
        profiles = "<br>".join(f"{p['min']} / {p['opt']} / {p['max']}" for p in binding["profiles"]) or "-"
        lines.append(f"| `{binding['name']}` | {binding['mode']} | {binding['dtype']} | {binding['dims']} | {profiles} |")
    if fusion:
        lines += ["", "## Fusion map", "", f"Source: TensorRT's {fusion['source'].replace('-', ' ')}.", "",
                  "| # | kernel | type | precision | ONNX nodes |", "| --- | --- | --- | --- | --- |"]
        for kernel in fusion["kernels"]:
            nodes = ", ".join(f"`{n}` ({op})" for n, op in zip(kernel["onnx_nodes"], kernel["onnx_op_types"])) or "-"
            lines.append(f"| {kernel['index']} | `{kernel['name']}` | {kernel['type']} | {kernel['precision']} | {nodes} |")
        if fusion["folded_nodes"]:
            lines += ["", "### ONNX nodes no kernel runs", "",
                      "TensorRT evaluated these at build time or merged them away:", ""]
            lines += [f"- `{n['name']}` ({n['op_type']})" for n in fusion["folded_nodes"]]
    else:
        lines += ["", "## Fusion map", "", "Not available: TensorRT logged no layer information for this build."]
    if report.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def _target(target: dict) -> str:
    parts = []
    if target.get("compute_capabilities"):
        parts.append("sm " + ", ".join(target["compute_capabilities"]))
    if target.get("optimization_level") is not None:
        parts.append(f"optimization level {target['optimization_level']}")
    return "; ".join(parts) or "builder default"

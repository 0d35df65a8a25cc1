"""The HTML report's kernel sections: estimated time per kernel, the precision share and the fusion
map, each kernel coloured by the precision TensorRT chose for it."""

from __future__ import annotations

from trtc.report.html_cards import card as _card
from trtc.report.html_cards import esc as _e
from trtc.report.html_cards import optional as _optional
from trtc.report.kernel_label import kernel_label
from trtc.report.svg import Bar, Segment, bar_chart, label_chars, share_bar
from trtc.report.units import PRUNED_BY, UNNAMED_WHY, human, without_kernel

# TensorRT's datatype names -> what people call them, and one colour each (charts, pills, legend).
_PRECISIONS = {
    "Float": ("FP32", "#0969da"),
    "Half": ("FP16", "#1a7f37"),
    "BFloat16": ("BF16", "#1b7c83"),
    "Int8": ("INT8", "#bc4c00"),
    "FP8": ("FP8", "#8250df"),
    "FP4": ("FP4", "#bf3989"),
    "Int32": ("INT32", "#6e7781"),
    "Int64": ("INT64", "#6e7781"),
    "Bool": ("BOOL", "#6e7781"),
}
_NO_PRECISION = ("no datatype", "#afb8c1")  # shape calls and other kernels TensorRT gives none
_MAX_TIME_BARS = 40


def _precision_name(dtype: str | None) -> tuple[str, str]:
    return _PRECISIONS.get(dtype or "", (dtype, "#6e7781") if dtype and dtype != "none" else _NO_PRECISION)


def precision_pill(dtype: str | None) -> str:
    name, color = _precision_name(dtype)
    return f'<span class="pill" style="background:{color}" title="TensorRT: {_e(dtype or "none")}">{_e(name)}</span>'


def _kernel_label(kernel: dict) -> str:
    """'#3 stem.conv +2 more': by the nodes it covers, fitted to the chart's label column."""
    prefix = f"#{kernel['index']} "
    return prefix + kernel_label(kernel, label_chars() - len(prefix))


def _kernel_tooltip(kernel: dict) -> str:
    nodes = ", ".join(kernel["onnx_nodes"]) or "no ONNX node"
    estimate = (
        f"est. {kernel['estimated_us']:.2f} µs (roofline), {kernel.get('bound')}-bound"
        if kernel.get("estimated_us") is not None
        else "estimated time unknown"
    )
    return (
        f"#{kernel['index']} {kernel_label(kernel)}: {estimate}; TensorRT kernel {kernel['name']} ({kernel['type']}, "
        f"{_precision_name(kernel['precision'])[0]}); {human(kernel.get('flops'), 'FLOP')}, "
        f"{human(kernel.get('mac_bytes'), 'B')}; ONNX: {nodes}"
    )


def kernel_time_card(fusion: dict, cost: dict | None) -> str:
    if not cost or not cost.get("gpu"):
        return _card(
            "Estimated time per kernel",
            '<p class="lead">No estimate: no target GPU is known for this build '
            "(set <code>target.gpu</code> or a compute capability in the spec).</p>",
        )
    kernels = fusion["kernels"]
    basis = (cost.get("basis") or {}).get("time", {}).get("from") or f"a roofline of the {cost['gpu']['name']}"
    lead = (
        f"Estimated, not measured: from {_e(basis)}. A kernel's time is max(FLOPs / peak rate for its precision, "
        "bytes / bandwidth). Colour: kernel precision."
    )
    shown = kernels
    if len(kernels) > _MAX_TIME_BARS:
        shown = sorted(kernels, key=lambda k: -(k.get("estimated_us") or 0))[:_MAX_TIME_BARS]
        lead += f" The {_MAX_TIME_BARS} slowest of {len(kernels)} kernels; the fusion map lists all."
    bars = [
        Bar(
            _kernel_label(k),
            k.get("estimated_us"),
            _precision_name(k["precision"])[1],
            f"{k['estimated_us']:.2f} µs" if k.get("estimated_us") is not None else "? µs",
            _kernel_tooltip(k),
        )
        for k in shown
    ]
    return _card(
        "Estimated time per kernel",
        _legend({k["precision"] for k in shown}) + bar_chart(bars, title="estimated time per kernel"),
        lead,
        "time",
    )


def _legend(dtypes: set) -> str:
    names = sorted({_precision_name(d) for d in dtypes})
    return (
        '<div class="legend">'
        + "".join(
            f'<span><span class="swatch" style="background:{color}"></span>{_e(name)}</span>' for name, color in names
        )
        + "</div>"
    )


def precision_share_card(fusion: dict) -> str:
    kernels = fusion["kernels"]
    groups: dict[tuple[str, str], dict] = {}
    for kernel in kernels:
        group = groups.setdefault(
            _precision_name(kernel["precision"]), {"kernels": 0, "us": 0.0, "flops": 0, "known": True}
        )
        group["kernels"] += 1
        group["flops"] += kernel.get("flops") or 0
        if kernel.get("estimated_us") is None:
            group["known"] = False
        group["us"] += kernel.get("estimated_us") or 0.0
    ordered = sorted(groups.items(), key=lambda item: -item[1]["kernels"])
    rows = [
        ("kernels", share_bar([Segment(n, g["kernels"], c) for (n, c), g in ordered], title="kernels per precision")),
        ("FLOPs", share_bar([Segment(n, g["flops"], c) for (n, c), g in ordered], title="FLOPs per precision")),
    ]
    if all(g["known"] for g in groups.values()) and any(g["us"] for g in groups.values()):
        rows.append(
            (
                "estimated time",
                share_bar([Segment(n, g["us"], c) for (n, c), g in ordered], title="estimated time per precision"),
            )
        )
    bars = "".join(f'<div class="share-row"><div class="label">{label}</div>{svg}</div>' for label, svg in rows if svg)
    total_us = sum(g["us"] for g in groups.values()) or 1
    times_known = all(g["known"] for g in groups.values())
    total_flops = sum(g["flops"] for g in groups.values()) or 1
    table = (
        '<table><thead><tr><th>precision</th><th class="num">kernels</th><th class="num">FLOPs</th><th class="num">share of FLOPs</th>'
        '<th class="num">est. time</th><th class="num">share of time</th></tr></thead><tbody>'
    )
    for (name, color), g in ordered:
        table += (
            f'<tr><td><span class="pill" style="background:{color}">{_e(name)}</span></td><td class="num">{g["kernels"]}</td>'
            f'<td class="num">{human(g["flops"], "FLOP")}</td><td class="num">{g["flops"] / total_flops:.1%}</td>'
            f'<td class="num">{_time_cell(g)}</td><td '
            f'class="num">{_optional(g["us"] / total_us if times_known else None, ".1%", "?")}</td></tr>'
        )
    return _card(
        "Precision share",
        bars + table + "</tbody></table>",
        "The datatype each kernel runs in, as TensorRT chose it.",
        "precision-share",
    )


def _time_cell(group: dict) -> str:
    """Estimated time of a precision group: '?' when no kernel of it has an estimate (no target
    GPU), 'N µs + ?' when only some have."""
    if group["known"]:
        return f"{group['us']:.2f} µs"
    return f"{group['us']:.2f} µs + ?" if group["us"] else "?"


def fusion_map_card(fusion: dict) -> str:
    counts = fusion["counts"]
    peak = max((k.get("estimated_us") or 0 for k in fusion["kernels"]), default=0) or 1
    rows = []
    for k in fusion["kernels"]:
        nodes = "".join(_node_chip(n, op) for n, op in zip(k["onnx_nodes"], k["onnx_op_types"]))
        estimate = k.get("estimated_us")
        width = 60 * (estimate or 0) / peak
        bar = (
            f'<span class="timebar" style="width:{width:.1f}px;background:{_precision_name(k["precision"])[1]}"></span>'
            if width >= 1
            else ""
        )
        bar += f"{estimate:.2f}" if estimate is not None else "?"
        rows.append(
            f'<tr class="{"fused" if len(k["onnx_nodes"]) > 1 else "unfused"}"><td class="num">{k["index"]}</td>'
            f'<td class="kernel"><code>{_e(k["name"])}</code></td><td>{_e(k["type"])}</td><td>{precision_pill(k["precision"])}</td>'
            f'<td>{nodes or "—"}</td><td class="num">{human(k.get("flops"), "FLOP")}</td>'
            f'<td class="num">{human(k.get("mac_bytes"), "B")}</td><td class="num">{bar}</td></tr>'
        )
    table = (
        '<table><thead><tr><th class="num">#</th><th>kernel</th><th>type</th><th>precision</th><th>fused ONNX nodes</th>'
        '<th class="num">FLOPs</th><th class="num">MAC</th><th class="num">est. µs</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )
    if fusion.get("pruned_nodes"):
        table += (
            "<h3>Pruned before the graph passes</h3><p>"
            + "".join(
                _node_chip(n["name"], f"{n['op_type']}, {PRUNED_BY.get(n['by'], n['by'])}")
                for n in fusion["pruned_nodes"]
            )
            + "</p>"
        )
    if fusion["removed_nodes"]:
        table += (
            "<h3>Removed by trtc's graph passes</h3><p>"
            + "".join(_node_chip(n["name"], f"{n['op_type']}, {n['pass']}") for n in fusion["removed_nodes"])
            + "</p>"
        )
    if fusion["folded_nodes"]:
        table += (
            '<h3>Evaluated by TensorRT at build time</h3><p class="lead">No kernel runs these: TensorRT computed them while '
            "building.</p><p>" + "".join(_node_chip(n["name"], n["op_type"]) for n in fusion["folded_nodes"]) + "</p>"
        )
    if fusion.get("unnamed_nodes"):
        table += (
            f'<h3>Run, but named by no kernel</h3><p class="lead">{_e(UNNAMED_WHY[0].upper() + UNNAMED_WHY[1:])}.</p><p>'
            + "".join(_node_chip(n["name"], n["op_type"]) for n in fusion["unnamed_nodes"])
            + "</p>"
        )
    lead = (
        f"{counts['onnx_nodes']} ONNX nodes → {counts['kernels']} kernels ({counts['fused_kernels']} fused; "
        f"{_e(without_kernel(fusion) or 'every node in a kernel')}); source: TensorRT's {_e(fusion['source'].replace('-', ' '))}."
    )
    return _card("Fusion map", table, lead, "fusion")


def _node_chip(name: str, op_type: str) -> str:
    added = op_type.endswith("(added by trtc)")  # precision casts and Q/DQ: set apart from the user's nodes
    return f'<span class="chip{" added" if added else ""}">{_e(name)} <span class="op">{_e(op_type)}</span></span>'

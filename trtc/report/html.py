"""Render a report dict as one self-contained HTML page: inline CSS and inline SVG, no scripts,
fonts or images from anywhere, so it opens offline as a CI artifact.

Every string that can come from the model or the spec (node, kernel and tensor names, paths,
warnings) goes through `_e`; the charts escape their own labels.
"""

from __future__ import annotations

from importlib import resources

from trtc.report.accuracy_summary import has_accuracy_summary
from trtc.report.html_cards import accuracy_card, passes_card
from trtc.report.html_cards import card as _card
from trtc.report.html_cards import esc as _e
from trtc.report.html_cards import optional as _optional
from trtc.report.html_facts import facts_card, precision_card, warnings_box
from trtc.report.kernel_label import kernel_label
from trtc.report.svg import Bar, Segment, bar_chart, label_chars, share_bar
from trtc.report.units import PRUNED_BY, build_time, fusion_effect, human, per_profile_note, without_kernel

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


def render_html(report: dict) -> str:
    build = report["build"]
    fusion = report.get("fusion")
    body = [
        _header(report),
        '<main class="wrap">',
        _kpis(report),
        accuracy_card(report.get("accuracy")) if has_accuracy_summary(report) else "",
        warnings_box(report.get("warnings") or []),
    ]
    if fusion:
        body += [
            _time_chart(fusion, report.get("cost")),
            _precision_share(fusion),
            _cost(report.get("cost")),
            _fusion_table(fusion),
        ]
    else:
        body.append(
            _card(
                "Fusion map", '<p class="lead">Not available: TensorRT logged no layer information for this build.</p>'
            )
        )
    body += [
        passes_card(report.get("passes")),
        precision_card(report),
        _bindings(report.get("bindings") or []),
        facts_card(build),
        "</main>",
        f"<footer>trtc {_e(build['trtc'])} · report schema {_e(report.get('schema', ''))} · "
        f"the same data as <code>{_e(build['name'])}.report.json</code></footer>",
    ]
    css = resources.files("trtc.report").joinpath("report.css").read_text()
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>trtc build report: {_e(build['name'])}</title>\n<style>\n{css}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )


def _precision_name(dtype: str | None) -> tuple[str, str]:
    return _PRECISIONS.get(dtype or "", (dtype, "#6e7781") if dtype and dtype != "none" else _NO_PRECISION)


def _pill(dtype: str | None) -> str:
    name, color = _precision_name(dtype)
    return f'<span class="pill" style="background:{color}" title="TensorRT: {_e(dtype or "none")}">{_e(name)}</span>'


def _header(report: dict) -> str:
    build = report["build"]
    badges = [
        f'<span class="badge">{_e(build["backend"])} {_e(build["backend_version"])}</span>',
        f'<span class="badge">{_e(report["precision"]["mode"].upper())}</span>',
    ]
    accuracy = report.get("accuracy")
    if accuracy and accuracy.get("gates"):
        passed = accuracy.get("passed") is not False
        badges.append(
            f'<span class="badge {"ok" if passed else "bad"}">accuracy gates {"passed" if passed else "failed"}</span>'
        )
    elif accuracy and accuracy.get("status") == "not measured":
        badges.append('<span class="badge bad">accuracy not measured</span>')
    warnings = report.get("warnings") or []
    if warnings:
        badges.append(f'<span class="badge warn">{len(warnings)} warning{"s" if len(warnings) != 1 else ""}</span>')
    return (
        f'<header><div class="wrap"><div class="tool">trtc build report</div><h1>{_e(build["name"])}</h1>'
        f'<div class="sub"><code>{_e(build["model"])}</code> → <code>{_e(build["plan"])}</code> · built {_e(build["built_at"])}</div>'
        f'<div class="badges">{"".join(badges)}</div></div></header>'
    )


def _kpis(report: dict) -> str:
    build, fusion, cost = report["build"], report.get("fusion") or {}, report.get("cost") or {}
    counts = fusion.get("counts", {})
    tiles = [("precision", "Precision", report["precision"]["mode"].upper(), f"{_e(build['backend'])}")]
    if counts:
        tiles.append(
            (
                "kernels",
                "Kernels",
                str(counts["kernels"]),
                f"from {counts['onnx_nodes']} ONNX nodes · {counts['fused_kernels']} fused{_e(per_profile_note(counts))}",
            )
        )
    if cost:
        tiles.append(
            ("flops", "FLOPs", human(cost["after_fusion"]["flops"], "FLOP"), "multiply-accumulates, at the opt shapes")
        )
        tiles.append(
            (
                "mac",
                "Memory traffic",
                human(cost["after_fusion"]["mac_bytes"], "B"),
                _fusion_tile_note(cost["mac_saved_percent"])
                if cost.get("mac_saved_percent") is not None
                else _unresolved_note(cost),
            )
        )
        if cost.get("gpu"):
            total = cost.get("estimated_total_us")
            tiles.append(
                (
                    "estimated-time",
                    "Estimated time",
                    f"{total:.1f} µs" if total is not None else "?",
                    f"not measured: from FLOPs and bytes, roofline on {_e(cost['gpu']['name'])}",
                )
            )
    tiles.append(("plan-size", "Plan size", human(build["plan_bytes"], "B"), f"{build['plan_bytes']:,} bytes"))
    took = build_time(build, with_outputs=False)
    tiles.append(("build-time", "Build time", took.split(" (")[0], _e(took) + ", before writing the outputs"))
    return (
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi" data-metric="{key}"><div class="label">{label}</div><div class="value">{_e(value)}</div>'
            f'<div class="note">{note}</div></div>'
            for key, label, value, note in tiles
        )
        + "</div>"
    )


def _fusion_tile_note(percent: float) -> str:
    if percent >= 0:
        return f'<span class="saved">−{percent:.1f}%</span> by fusion'
    return f"+{-percent:.1f}% after fusion (nodes split into several kernels)"


def _unresolved_note(cost: dict) -> str:
    unresolved = len(cost.get("unresolved_kernels") or [])
    return f"unknown: {unresolved} kernel(s) of dynamic size" if unresolved else "after fusion"


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


def _time_chart(fusion: dict, cost: dict | None) -> str:
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


def _precision_share(fusion: dict) -> str:
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


def _cost(cost: dict | None) -> str:
    if not cost:
        return ""
    stages = [
        ("ONNX model as given", cost["onnx_model"], "#8c959f"),
        ("before fusion", cost["before_fusion"], "#0969da"),
        ("after fusion", cost["after_fusion"], "#76b900"),
    ]
    flops = bar_chart(
        [Bar(label, s["flops"], color, human(s["flops"], "FLOP")) for label, s, color in stages],
        width=560,
        label_width=170,
        row=30,
        title="FLOPs",
    )
    mac = bar_chart(
        [Bar(label, s["mac_bytes"], color, human(s["mac_bytes"], "B")) for label, s, color in stages],
        width=560,
        label_width=170,
        row=30,
        title="memory traffic",
    )
    saved = (
        f"<p>Memory traffic: {human(abs(cost['mac_saved_bytes']), 'B')}, {_e(fusion_effect(cost['mac_saved_percent']))}.</p>"
        if cost.get("mac_saved_percent") is not None
        else ""
    )
    notes = ""
    if cost.get("unresolved_kernels"):
        notes += (
            f"<p>{len(cost['unresolved_kernels'])} kernel(s) have dynamic sizes trtc cannot resolve at the opt shapes: "
            "their memory traffic and the after-fusion total are unknown.</p>"
        )
    if cost.get("unknown_nodes"):
        notes += (
            f"<p>{len(cost['unknown_nodes'])} node(s) of unknown cost count as 0 FLOPs: "
            + ", ".join(f"<code>{_e(n)}</code>" for n in cost["unknown_nodes"][:10])
            + ("" if len(cost["unknown_nodes"]) <= 10 else ", …")
            + "</p>"
        )
    lead = (
        "Before fusion: every node of the graph TensorRT parsed (after trtc's passes and precision) reads and writes memory; "
        f"after fusion only kernel boundaries do. {_e(cost['convention'])}."
    )
    basis = cost.get("basis")
    if basis:
        lead += (
            f" FLOPs are counted from {_e(basis['flops']['from'])}. Memory traffic is counted from {_e(basis['mac_bytes']['from'])}."
            " Neither is measured."
        )
    return _card(
        "FLOPs and memory traffic",
        f'<div class="grid2"><div><h3>FLOPs</h3>{flops}</div><div><h3>Memory traffic (MAC)</h3>{mac}</div></div>'
        + saved
        + notes,
        lead,
        "cost",
    )


def _fusion_table(fusion: dict) -> str:
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
            f'<td class="kernel"><code>{_e(k["name"])}</code></td><td>{_e(k["type"])}</td><td>{_pill(k["precision"])}</td>'
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
    lead = (
        f"{counts['onnx_nodes']} ONNX nodes → {counts['kernels']} kernels ({counts['fused_kernels']} fused; "
        f"{_e(without_kernel(fusion) or 'every node in a kernel')}); source: TensorRT's {_e(fusion['source'].replace('-', ' '))}."
    )
    return _card("Fusion map", table, lead, "fusion")


def _node_chip(name: str, op_type: str) -> str:
    added = op_type.endswith("(added by trtc)")  # precision casts and Q/DQ: set apart from the user's nodes
    return f'<span class="chip{" added" if added else ""}">{_e(name)} <span class="op">{_e(op_type)}</span></span>'


def _bindings(bindings: list[dict]) -> str:
    if not bindings:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(b['name'])}</code></td><td>{_e(b['mode'])}</td><td>{_pill(b['dtype'])}</td><td "
        f'class="mono">{_e(b["dims"])}</td>'
        f'<td class="mono">{"<br>".join(_e(_profile(p)) for p in b["profiles"]) or "—"}</td></tr>'
        for b in bindings
    )
    return _card(
        "Inputs and outputs",
        "<table><thead><tr><th>tensor</th><th>mode</th><th>dtype</th><th>shape</th>"
        f"<th>profiles (min / opt / max)</th></tr></thead><tbody>{rows}</tbody></table>",
        anchor="bindings",
    )


def _profile(profile: dict) -> str:
    return f"{profile['min']} / {profile['opt']} / {profile['max']}"

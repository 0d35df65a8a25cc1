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
from trtc.report.html_facts import facts_card, precision_card, warnings_box
from trtc.report.html_kernels import fusion_map_card, kernel_time_card, precision_pill, precision_share_card
from trtc.report.svg import Bar, bar_chart
from trtc.report.units import build_time, fusion_effect, human, per_profile_note


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
            kernel_time_card(fusion, report.get("cost")),
            precision_share_card(fusion),
            _cost(report.get("cost")),
            fusion_map_card(fusion),
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


def _bindings(bindings: list[dict]) -> str:
    if not bindings:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(b['name'])}</code></td><td>{_e(b['mode'])}</td><td>{precision_pill(b['dtype'])}</td><td "
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

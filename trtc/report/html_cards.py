"""The HTML report's frame (escaping, cards) and its cards of tables and lists: accuracy against
FP32 and the graph passes. Every string from the model, the data or the spec goes through `esc`."""

from __future__ import annotations

from html import escape

from trtc.report.accuracy_summary import figures, samples_phrase, worst_output
from trtc.report.pass_groups import grouped_changes
from trtc.report.quant_steps import layer_steps, step_counts
from trtc.report.units import human, savings


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def optional(value: float | None, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def card(title: str, content: str, lead: str = "", anchor: str = "") -> str:
    ident = f' id="{anchor}"' if anchor else ""
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section class="card"{ident}><h2>{esc(title)}</h2>{lead_html}{content}</section>'


def passes_card(passes: dict | None) -> str:
    if not passes or not passes.get("changes"):
        return ""
    rows = "".join(
        f'<tr><td class="nowrap">{esc(g["pass_name"])}</td><td class="num">{len(g["changes"])}</td>{_pass_nodes(g["changes"])}'
        f'<td class="num">{human(g["flops_before"], "FLOP")} → {human(g["flops_after"], "FLOP")}</td>'
        f'<td class="num">{human(g["mac_before"], "B")} → {human(g["mac_after"], "B")}</td><td>{esc(g["note"])}</td></tr>'
        for g in grouped_changes(passes["changes"])
    )
    totals = passes["totals"]
    lead = (
        f"{totals['changes']} changes removed {totals['nodes_removed']} nodes and {savings(totals['flops_saved'], totals['mac_saved'])} "
        "before TensorRT saw the graph."
    )
    table = (
        '<table><thead><tr><th>pass</th><th class="num">changes</th><th>nodes before</th><th>nodes after</th><th class="num">FLOPs</th>'
        f'<th class="num">MAC</th><th>note</th></tr></thead><tbody>{rows}</tbody></table>'
    )
    return card("Graph passes", table, lead + " Changes of one pass with the same note share a row.", "passes")


def _pass_nodes(changes: list[dict]) -> str:
    """The before and after cells of a row: one change's nodes, or several changes folded into a
    list that opens on a click (39 BatchNorm folds read as one row)."""

    def chips(names: list[str]) -> str:
        return "".join(f'<span class="chip">{esc(n)}</span>' for n in names) or "—"

    if len(changes) == 1:
        return f"<td>{chips(changes[0]['nodes_before'])}</td><td>{chips(changes[0]['nodes_after'])}</td>"
    items = "".join(f"<li>{chips(c['nodes_before'])} → {chips(c['nodes_after'])}</li>" for c in changes)
    return f'<td colspan="2"><details><summary>{len(changes)} changes</summary><ul class="changes">{items}</ul></details></td>'


def accuracy_card(accuracy: dict | None) -> str:
    if not accuracy or accuracy.get("status") == "not measured":
        reason = accuracy["reason"] if accuracy else "the report holds no accuracy section"
        would = (
            f"<p>Samples it would have used: {esc(accuracy.get('kind'))} ({esc(accuracy.get('source'))}).</p>"
            if accuracy
            else ""
        )
        return card(
            "Accuracy",
            f'<p class="failed">Accuracy against FP32 was not measured: {esc(reason)}.</p>{would}',
            anchor="accuracy",
        )
    rows = "".join(
        f'<tr><td><code>{esc(o["name"])}</code></td><td class="num">{o["max_abs_error"]:.3g}</td>'
        f'<td class="num">{o["rel_l2_error"]:.3g}</td><td class="num">{o["cosine"]:.6f}</td>'
        f'<td class="num">{optional(o.get("sample_cosine_mean"), ".6f")}</td>'
        f'<td class="num">{optional(o.get("sample_cosine_worst"), ".6f")}</td>'
        f'<td class="num">{optional(o.get("top1_agreement"), ".4f")}</td>'
        f'<td class="num">{o.get("nonfinite") or 0}</td></tr>'
        for o in accuracy["outputs"]
    )
    lead = f"Against FP32, measured in onnxruntime on {esc(samples_phrase(accuracy))}: {esc(accuracy['source'])}."
    if accuracy.get("emulated"):
        lead += " Reduced precision emulated by rounding the converted tensors in FP32."
    worst = worst_output(accuracy)
    summary = f"<p>Worst output <code>{esc(worst['name'])}</code>: {figures(worst)}.</p>" if worst else ""
    gates = ""
    if accuracy.get("gates"):
        passed = accuracy.get("passed") is not False
        gates = (
            f'<p class="{"saved" if passed else "failed"}">Gates '
            + ", ".join(f"{esc(k)} {esc(v)}" for k, v in accuracy["gates"].items())
            + (": passed." if passed else ": failed.")
            + "</p>"
        )
    table = (
        '<table><thead><tr><th>output</th><th class="num">max abs error</th><th class="num">relative L2</th><th class="num">cosine</th>'
        '<th class="num">per-sample mean</th><th class="num">worst sample</th>'
        f'<th class="num">top-1 agreement</th><th class="num">Inf/NaN</th></tr></thead><tbody>{rows}</tbody></table>'
    )
    return card("Accuracy", summary + table + gates, lead, "accuracy")


def quantization_steps(calibration: dict) -> str:
    """The steps beyond calibration, per layer (quant_steps.py), for the Precision card."""
    rows = layer_steps(calibration)
    if not rows:
        return ""
    body = "".join(
        f"<tr><td><code>{esc(layer)}</code></td><td>{'<br>'.join(esc(step) for step in done)}</td></tr>"
        for layer, done in rows
    )
    return (
        f"<h3>Steps beyond calibration</h3><p>{esc(step_counts(calibration))}.</p>"
        f"<table><thead><tr><th>layer</th><th>steps</th></tr></thead><tbody>{body}</tbody></table>"
    )

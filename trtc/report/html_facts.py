"""The HTML report's cards of plain facts: the precision and quantization steps, the build
facts and the warnings. Every string from the model, the data or the spec goes through `esc`."""

from __future__ import annotations

from trtc.report.html_cards import card, esc, quantization_steps
from trtc.report.units import build_time


def precision_card(report: dict) -> str:
    precision, calibration = report.get("precision", {}), report.get("calibration")
    parts = []
    if precision.get("mode", "fp32") not in ("fp32", "int8", "fp8"):
        parts.append(
            f"<p>Mode {esc(precision['mode'])}: {precision.get('converted_nodes', 0)} nodes converted, "
            f"{precision.get('casts_inserted', 0)} casts inserted.</p>"
        )
    ranges = precision.get("activation_ranges")
    if ranges:
        parts.append(
            f"<p>FP16 range rules read the activations of {ranges['samples']} {esc(ranges['kind'])} samples "
            f"({esc(ranges['source'])}).</p>"
        )
    if precision.get("kept_fp32"):  # int8/fp8: nodes the FP16 fallback keeps in FP32
        parts.append(
            "<h3>Kept in FP32</h3><ul>"
            + "".join(f"<li><code>{esc(n)}</code>: {esc(why)}</li>" for n, why in precision["kept_fp32"].items())
            + "</ul>"
        )
    if calibration:
        parts.append(
            f"<p>{esc(calibration['mode'].upper())} with {esc(calibration['method'])} calibration on {calibration['samples']} samples "
            f"({esc(calibration['data'])}); everything not quantized runs in {esc(calibration['fallback'])}.</p>"
            f"<p>Quantized layers ({len(calibration['quantized_layers'])}): "
            + "".join(f'<span class="chip">{esc(n)}</span>' for n in calibration["quantized_layers"])
            + "</p>"
        )
        if calibration.get("not_quantized"):
            parts.append(
                "<h3>Not quantized</h3><ul>"
                + "".join(
                    f"<li><code>{esc(n)}</code>: {esc(why)}</li>" for n, why in calibration["not_quantized"].items()
                )
                + "</ul>"
            )
        parts.append(quantization_steps(calibration))
    return card("Precision", "".join(parts), anchor="precision") if parts else ""


def facts_card(build: dict) -> str:
    target = build["target"]
    facts = [
        ("trtc", build["trtc"]),
        ("backend", f"{build['backend']} {build['backend_version']}"),
        ("compute capabilities", ", ".join(target.get("compute_capabilities") or []) or "builder default"),
        (
            "optimization level",
            target.get("optimization_level") if target.get("optimization_level") is not None else "builder default",
        ),
        ("workspace", f"{target['workspace'] / 2**20:g} MiB" if target.get("workspace") else "builder default"),
        ("spec", build.get("spec") or "—"),
        ("spec fingerprint", build["spec_fingerprint"]),
        ("model", build["model"]),
        ("model sha256", build["model_sha256"]),
        ("plan", build["plan"]),
        ("plan sha256", build["plan_sha256"]),
        ("plan size", f"{build['plan_bytes']:,} bytes"),
        ("build time", build_time(build, with_outputs=False)),
        ("built at", build["built_at"]),
    ]
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    return card("Build facts", f'<dl class="facts mono">{rows}</dl>', anchor="facts")


def warnings_box(warnings: list[str]) -> str:
    if not warnings:
        return ""
    return (
        '<div class="warnings" id="warnings"><strong>Warnings</strong><ul>'
        + "".join(f"<li>{esc(w)}</li>" for w in warnings)
        + "</ul></div>"
    )

"""The Markdown report's precision sections: quantization, the FP16/BF16 conversion and the
accuracy against FP32."""

from __future__ import annotations

from trtc.report.accuracy_summary import figures, samples_phrase, worst_output
from trtc.report.markdown_text import code, text
from trtc.report.quant_steps import layer_steps, step_counts


def calibration_lines(calibration: dict | None) -> list[str]:
    if not calibration:
        return []
    lines = [
        "",
        "## Quantization",
        "",
        f"{calibration['mode'].upper()} with {calibration['method']} calibration on {calibration['samples']} samples "
        f"({text(calibration['data'])}); cache: {text(calibration['cache'])}; everything not quantized runs in {calibration['fallback']}.",
        "",
        f"Quantized layers ({len(calibration['quantized_layers'])}): "
        + ", ".join(map(code, calibration["quantized_layers"])),
    ]
    if calibration["not_quantized"]:
        lines += ["", "Not quantized:", ""] + [
            f"- {code(n)}: {text(why)}" for n, why in calibration["not_quantized"].items()
        ]
    fallback = calibration.get("auto_fallback")
    if fallback:
        share = (
            f" ({fallback['quantized_flops'] / fallback['quantizable_flops']:.0%} of the quantizable FLOPs stay quantized)"
            if fallback.get("quantizable_flops")
            else ""
        )
        lines += [
            "",
            "auto_fallback returned to the fallback precision: " + ", ".join(map(code, fallback["kept_back"])) + share,
        ]
    steps = layer_steps(calibration)
    if steps:
        lines += [
            "",
            f"Steps beyond calibration: {step_counts(calibration)}.",
            "",
            "| layer | steps |",
            "| --- | --- |",
        ]
        lines += [f"| {code(layer)} | {'; '.join(done)} |" for layer, done in steps]  # trtc's words and numbers
    ranked_on = (fallback or calibration.get("sensitivity") or {}).get("ranked_on")
    if ranked_on:
        lines += [
            "",
            f"Layers ranked on {ranked_on['samples']} {ranked_on['kind']} samples ({text(ranked_on['source'])}).",
        ]
    lines += ["", "| tensor | calibrated amax |", "| --- | ---: |"]
    lines += [f"| {code(t)} | {v:.4g} |" for t, v in list(calibration["ranges"].items())[:20]]
    return lines


def precision_lines(precision: dict) -> list[str]:
    lines = []
    kept = [f"- {code(node)}: {text(why)}" for node, why in (precision.get("kept_fp32") or {}).items()]
    ranges = precision.get("activation_ranges")
    read = (
        [
            "",
            f"FP16 range rules read the activations of {ranges['samples']} {ranges['kind']} samples ({text(ranges['source'])}).",
        ]
        if ranges
        else []
    )
    if precision.get("mode", "fp32") not in ("fp32", "int8", "fp8"):
        lines += [
            "",
            "## Precision",
            "",
            f"Mode {precision['mode']}: {precision.get('converted_nodes', 0)} nodes converted, "
            f"{precision.get('casts_inserted', 0)} casts inserted.",
            *read,
        ]
        if kept:
            lines += ["", "Kept in FP32:", ""] + kept
    elif kept or read:
        lines += ["", "## Kept in FP32", *read, ""]
        lines += (
            [f"The {precision['fallback']} fallback keeps these nodes in FP32:", ""] + kept
            if kept
            else [f"The {precision['fallback']} fallback keeps no node in FP32."]
        )
    return lines


def accuracy_lines(accuracy: dict | None) -> list[str]:
    lines = ["", "## Accuracy against FP32", ""]
    if not accuracy or accuracy.get("status") == "not measured":
        reason = text(accuracy["reason"]) if accuracy else "the report holds no accuracy section"
        lines.append(f"Not measured: {reason}.")
        if accuracy:
            lines += ["", f"Samples it would have used: {text(accuracy.get('kind'))} ({text(accuracy.get('source'))})."]
        return lines
    emulated = (
        (
            " Reduced precision emulated by rounding the converted tensors in FP32 (onnxruntime's CPU kernels have no BF16"
            " and run FP16 ops in FP32)."
        )
        if accuracy.get("emulated")
        else ""
    )
    lines.append(f"Measured in onnxruntime on {text(samples_phrase(accuracy))}: {text(accuracy['source'])}.{emulated}")
    worst = worst_output(accuracy)
    if worst:
        lines += ["", f"Worst output {code(worst['name'])}: {figures(worst)}."]
    lines += [
        "",
        "| output | max abs error | relative L2 | cosine | per-sample mean | worst sample | top-1 agreement |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in accuracy["outputs"]:
        top1 = f"{o['top1_agreement']:.4f}" if o["top1_agreement"] is not None else "-"
        mean, worst_sample = (
            f"{o[k]:.6f}" if o.get(k) is not None else "-" for k in ("sample_cosine_mean", "sample_cosine_worst")
        )
        lines.append(
            f"| {code(o['name'])} | {o['max_abs_error']:.3g} | {o['rel_l2_error']:.3g} | {o['cosine']:.6f} | "
            f"{mean} | {worst_sample} | {top1} |"
        )
    overflowing = [f"{code(o['name'])} ({o['nonfinite']})" for o in accuracy["outputs"] if o.get("nonfinite")]
    if overflowing:
        lines += ["", "Inf/NaN where FP32 is finite (left out of the metrics): " + ", ".join(overflowing) + "."]
    if accuracy["gates"]:
        lines += ["", "Gates: " + ", ".join(f"{k} {v}" for k, v in accuracy["gates"].items()) + ": passed."]
    return lines

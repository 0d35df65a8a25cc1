"""The accuracy summary that opens a reduced-precision report: what the figures were measured on
(how many samples, real or random, held out of calibration or not) and the worst output. Plain
text from the report's own words; renderers escape the strings that come from the spec or data."""

from __future__ import annotations


def has_accuracy_summary(report: dict) -> bool:
    """FP16, BF16, INT8 and FP8 reports open with accuracy (or say it was not measured)."""
    return (report.get("precision") or {}).get("mode", "fp32") != "fp32" or bool(report.get("accuracy"))


def samples_phrase(accuracy: dict) -> str:
    """'64 random samples (not real data)', '8 real samples, held out from calibration'."""
    held_out = accuracy.get("held_out")
    if held_out is None:  # reports written before the field: the source says it
        held_out = "held out" in (accuracy.get("source") or "")
    kind = accuracy.get("kind") or "unknown-kind"
    phrase = f"{accuracy.get('samples', 0)} {kind} samples"
    if kind == "random":
        return phrase + " (not real data)"
    return phrase + (", held out from calibration" if held_out else "")


def worst_output(accuracy: dict) -> dict | None:
    """The output furthest from FP32 (lowest pooled cosine)."""
    outputs = [o for o in accuracy.get("outputs") or [] if o.get("cosine") is not None]
    return min(outputs, key=lambda o: o["cosine"]) if outputs else None


def figures(output: dict) -> str:
    """'cosine 0.999990, per-sample mean 0.999991, worst sample 0.999950' of one output."""
    shown = [f"cosine {output['cosine']:.6f}"]
    for key, label in (("sample_cosine_mean", "per-sample mean"), ("sample_cosine_worst", "worst sample")):
        if output.get(key) is not None:
            shown.append(f"{label} {output[key]:.6f}")
    return ", ".join(shown)

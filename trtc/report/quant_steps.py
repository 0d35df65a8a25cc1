"""Per quantized layer, the steps that shaped its Q/DQ beyond calibration (depthwise
equalization, range migration, bias correction, a split per Concat branch), read from the
report's calibration section, for the Markdown and HTML reports. Plain strings: each renderer
escapes them for where they go."""

from __future__ import annotations

STEP_NAMES = {
    "split_concat_readers": "split per Concat branch",
    "equalized_inputs": "depthwise equalization",
    "migrated_inputs": "range migration",
    "bias_corrected": "bias correction",
}


def layer_steps(calibration: dict) -> list[tuple[str, list[str]]]:
    """(layer, what each step did to it) for every layer at least one step touched, in the
    order of the quantized layers (a split convolution under its own name, before its parts)."""
    steps: dict[str, list[str]] = {}
    for layer, split in (calibration.get("split_concat_readers") or {}).items():
        ranges = ", ".join(f"{r:.3g}" for r in split["ranges"])
        steps.setdefault(layer, []).append(
            f"split into {len(split['parts'])} convolutions, one per Concat branch (branch ranges {ranges})"
        )
    for layer, step in (calibration.get("equalized_inputs") or {}).items():
        steps.setdefault(layer, []).append(
            f"depthwise equalization: {step['channels']} channels, quiet ones lifted up to {step['largest_boost']:g}x"
        )
    for layer, step in (calibration.get("migrated_inputs") or {}).items():
        steps.setdefault(layer, []).append(
            f"range migration at strength {step['strength']:g}: quiet channels lifted up to {step['largest_boost']:g}x"
        )
    for layer, shift in (calibration.get("bias_corrected") or {}).items():
        steps.setdefault(layer, []).append(f"bias correction: largest channel shift {shift:.3g}")
    order = {name: position for position, name in enumerate(calibration.get("quantized_layers") or [])}
    for layer, split in (calibration.get("split_concat_readers") or {}).items():
        order.setdefault(layer, min((order[p] for p in split["parts"] if p in order), default=len(order)) - 0.5)
    return sorted(steps.items(), key=lambda item: order.get(item[0], len(order)))


def step_counts(calibration: dict) -> str:
    """'range migration on 56, bias correction on 64 (of 64 quantized layers)'; steps that touched none left out."""
    counts = [f"{name} on {len(calibration.get(key))}" for key, name in STEP_NAMES.items() if calibration.get(key)]
    layers = len(calibration.get("quantized_layers") or [])
    return f"{', '.join(counts)} (of {layers} quantized layers)" if counts else ""

"""Numbers for people: the JSON report keeps exact integers; Markdown and the console show these."""

from __future__ import annotations


def human(value: float | None, unit: str) -> str:
    """1234567 -> '1.23 M<unit>'."""
    if value is None:
        return "?"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"

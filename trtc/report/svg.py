"""Small inline-SVG charts for the HTML report: horizontal bars and 100 % share bars.

Plain strings, no library: the report must open offline and the charts are simple enough that a
plotting dependency would cost more than it gives. Every label goes through `escape` (node and
kernel names come from the user's model). Sizes are in SVG user units; the charts scale to their
container through `viewBox`.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

FONT = 'font-family="inherit" font-size="12"'


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: unknown, drawn as a dashed stub with "?"
    color: str
    text: str  # the value as people read it, printed after the bar
    tooltip: str = ""


@dataclass(frozen=True)
class Segment:
    label: str
    value: float
    color: str


def bar_chart(bars: list[Bar], width: int = 960, label_width: int = 300, row: int = 22, title: str = "") -> str:
    """One horizontal bar per row, all on one linear scale starting at zero."""
    if not bars:
        return ""
    value_width = 110
    plot = width - label_width - value_width
    peak = max((b.value for b in bars if b.value is not None), default=0) or 1
    height = row * len(bars) + 8
    parts = [_open(width, height, title)]
    for i, bar in enumerate(bars):
        y = 4 + i * row
        middle = y + row / 2
        tooltip = f"<title>{escape(bar.tooltip or f'{bar.label}: {bar.text}')}</title>"
        parts.append(f'<g class="row">{tooltip}')
        if i % 2 == 0:
            parts.append(f'<rect x="0" y="{y}" width="{width}" height="{row}" fill="#f6f8fa"/>')
        parts.append(
            f'<text x="{label_width - 8}" y="{middle:.1f}" text-anchor="end" dominant-baseline="central" '
            f'{FONT} fill="#24292f">{escape(_clip(bar.label, label_chars(label_width)))}</text>'
        )
        if bar.value is None:
            parts.append(
                f'<rect x="{label_width}" y="{y + 4}" width="14" height="{row - 8}" fill="none" stroke="#8c959f" stroke-dasharray="2 2"/>'
            )
            length = 14.0
        else:
            length = max(plot * bar.value / peak, 1.0 if bar.value > 0 else 0.0)
            parts.append(
                f'<rect x="{label_width}" y="{y + 4}" width="{length:.1f}" height="{row - 8}" rx="2" fill="{bar.color}"/>'
            )
        parts.append(
            f'<text x="{label_width + length + 6:.1f}" y="{middle:.1f}" dominant-baseline="central" {FONT} '
            f'fill="#57606a">{escape(bar.text)}</text></g>'
        )
    parts.append(f'<line x1="{label_width}" y1="2" x2="{label_width}" y2="{height - 2}" stroke="#8c959f"/>')
    parts.append("</svg>")
    return "".join(parts)


def label_chars(label_width: int = 300) -> int:
    """How many characters of a bar's label fit its column (the rest is clipped with '…')."""
    return label_width // 7


def share_bar(segments: list[Segment], width: int = 960, height: int = 30, title: str = "") -> str:
    """One bar split into segments proportional to their values (a 100 % stacked bar). Segments
    too narrow for their label keep it in the tooltip and the legend beside the chart."""
    total = sum(s.value for s in segments)
    if total <= 0:
        return ""
    parts = [_open(width, height, title)]
    x = 0.0
    for segment in segments:
        share = segment.value / total
        length = width * share
        tooltip = f"{segment.label}: {share:.1%}"
        parts.append(
            f"<g><title>{escape(tooltip)}</title>"
            f'<rect x="{x:.2f}" y="0" width="{length:.2f}" height="{height}" fill="{segment.color}"/>'
        )
        label = f"{segment.label} {share:.0%}"
        if length > 7.5 * len(label) + 12:
            parts.append(
                f'<text x="{x + 8:.2f}" y="{height / 2}" dominant-baseline="central" {FONT} font-weight="600" '
                f'fill="#ffffff">{escape(label)}</text>'
            )
        parts.append("</g>")
        x += length
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    label = f"<title>{escape(title)}</title>" if title else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" preserveAspectRatio="xMinYMin meet">{label}'
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""JSON as trtc writes it, for machines: strict, because most parsers refuse a bare NaN or
Infinity (Python's json writes them by default). A value that is not a finite number is null."""

from __future__ import annotations

import json
import math


def strict_json(value, indent: int | None = 2, default=None) -> str:
    try:  # most values hold no such number: writing refuses one, and copying them all is skipped
        return json.dumps(value, indent=indent, allow_nan=False, default=default)
    except ValueError:
        return json.dumps(_finite(value), indent=indent, allow_nan=False, default=default)


def _finite(item):
    if isinstance(item, float) and not math.isfinite(item):
        return None
    if isinstance(item, dict):
        return {key: _finite(v) for key, v in item.items()}
    if isinstance(item, (list, tuple)):
        return [_finite(v) for v in item]
    return item

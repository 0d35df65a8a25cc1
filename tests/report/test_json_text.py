"""Report files and --json output are strict JSON: most parsers refuse a bare NaN or Infinity."""

from __future__ import annotations

import json
import math

from trtc.report.json_text import strict_json


def _refuse(constant: str):
    raise ValueError(f"bare {constant}")


def test_non_finite_numbers_are_null_at_any_depth():
    text = strict_json({"cosine": math.nan, "outputs": [{"max_abs": math.inf}, (-math.inf, 1.5)], "n": 3})
    assert json.loads(text, parse_constant=_refuse) == {
        "cosine": None,
        "outputs": [{"max_abs": None}, [None, 1.5]],
        "n": 3,
    }

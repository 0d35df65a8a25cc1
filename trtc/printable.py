"""Text from models, data and files shown on one line: control characters (line breaks, tabs,
terminal escapes) and the characters YAML reads as line breaks or refuses become visible
Python-style escapes (`\\n`), so a name cannot start a line of its own in a report or a spec."""

from __future__ import annotations

import re

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def one_line(value: object) -> str:
    return _UNPRINTABLE.sub(
        lambda match: match.group().encode("unicode_escape", "backslashreplace").decode(), str(value)
    )

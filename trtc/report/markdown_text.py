"""Text from models, data, specs and TensorRT made safe for Markdown: it shows as written and
cannot add headings, links, table cells or rows."""

from __future__ import annotations

import re

from trtc.printable import one_line

# CommonMark lets a backslash escape any ASCII punctuation, so escaping all of it is always right.
_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")


def text(value: object) -> str:
    """`value` as Markdown text that reads as written (line breaks, which end table rows and list
    items and start headings, shown as escapes)."""
    return _PUNCTUATION.sub(lambda match: "\\" + match.group(), one_line(value))


def code(value: object) -> str:
    """`value` as a code span. Backticks end one and a pipe splits a table cell even inside one,
    and spaces at its ends are dropped: such names become escaped text in <code> instead."""
    shown = one_line(value)
    if not shown or "`" in shown or "|" in shown or shown != shown.strip(" "):
        return f"<code>{text(value)}</code>"
    return f"`{shown}`"

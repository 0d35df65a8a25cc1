"""Make-format dependency files: `-include build/demo.d` in a Makefile rebuilds the plan when the
spec, the model, its external data or the calibration data change.

File names are escaped for GNU Make (measured with Make 4.3 by tests/cli/test_depfile_make.py):
a Makefile that includes the rule reads exactly the files' names, whatever they hold. Names
that no Make rule can hold are refused instead of written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from trtc.errors import UsageError
from trtc.outputs import StagedOutputs

# A newline ends the rule (and a tab after it starts a recipe); a tab splits a target even
# escaped; ';' starts a recipe even escaped or expanded; Make drops a carriage return at a line end.
_INEXPRESSIBLE = {"\n": "a newline", "\t": "a tab", ";": "a ';'", "\r": "a carriage return"}
# Escaped with a backslash: word separators, comments, rule separators and wildcards.
_BACKSLASHED = set(" #:*?[")
# Relative names Make would read as something else, written as absolute paths instead: special
# targets and suffix rules (`.SILENT`, `.c.o`), and home folders (`~`, `~user/x`).
_NOT_RELATIVE = re.compile(r"\.[^/]*|~.*")


def render(targets: list[Path], prerequisites: list[Path]) -> str:
    """One rule; paths relative to the working directory when below it (Make compares target
    names as strings, and Makefiles name them relative to where make runs). Raises UsageError
    for a name Make cannot express."""
    unique = list(dict.fromkeys(prerequisites))
    for path in [*targets, *unique]:
        _refuse_inexpressible(_make_path(path))
    lines = [" ".join(_escaped(p, target=True) for p in targets) + ": \\"]
    lines += [f"  {_escaped(p, target=False)} \\" for p in unique[:-1]]
    lines += [f"  {_escaped(unique[-1], target=False)}"] if unique else []
    # An empty rule per prerequisite: deleting one then rebuilds instead of failing make.
    lines += [""] + [f"{_escaped(p, target=True)}:" for p in unique]
    return "\n".join(lines) + "\n"


def write(path: Path, targets: list[Path], prerequisites: list[Path]) -> None:
    rule = render(targets, prerequisites)
    with StagedOutputs() as staged:
        staged.write(path, encoded(rule))
        staged.commit()


def encoded(rule: str) -> bytes:
    return os.fsencode(rule)  # file names that are not UTF-8 stay the bytes they are


def _make_path(path: Path) -> str:
    text = str(path)
    try:
        relative = os.path.relpath(path)
        if not relative.startswith("..") and not _NOT_RELATIVE.fullmatch(relative):
            text = relative
    except ValueError:  # another drive on Windows
        pass
    return text


def _refuse_inexpressible(name: str) -> None:
    found = next((what for char, what in _INEXPRESSIBLE.items() if char in name), None)
    if found is None and _is_archive_member(name):
        found = "a name Make reads as an archive member"
    if found:
        raise UsageError(
            f"--depfile: Make cannot name the file {name!r} ({found}) in a rule; rename it, or build without --depfile"
        )


def _is_archive_member(name: str) -> bool:
    """`lib(member)`: Make's archive syntax, which no escape turns off."""
    return name.endswith(")") and name.find("(") > 0


def _escaped(path: Path, target: bool) -> str:
    """`path` as a target (before the colon) or a prerequisite (after it): the two differ in
    what Make treats specially."""
    name = _make_path(path)
    pieces = [_escaped_char(char, target) for char in name]
    if name.endswith(" "):
        pieces[-1] = "[\\ ]"  # Make drops an escaped space at a line end: match it by wildcard
    out = []
    for index, piece in enumerate(pieces):
        if piece == "\\":
            following = next((p for p in pieces[index + 1 :] if p != "\\"), None)
            if following is None:
                piece = "[\\\\]"  # a trailing backslash would join the next word or line: match it by wildcard
            elif following[0] in "\\[":
                piece = "\\\\"  # backslashes before an escape escape each other
        out.append(piece)
    return "".join(out)


def _escaped_char(char: str, target: bool) -> str:
    if char in _BACKSLASHED or (char == "%" and target):
        return "\\" + char  # '%' makes a target a pattern
    if char == "$":
        return "$$"
    if char == "=":
        return "$(if ,,=)"  # unescapable in a rule line (it would assign a variable); expanded after that check
    if char == "|":
        return (
            "[|]" if target else "[\\|]"
        )  # a wildcard matching only '|': order-only prerequisites start at a bare one
    return char

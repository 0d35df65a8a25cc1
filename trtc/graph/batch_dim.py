"""Which dimension of each input `max_batch` ranges: found by the dimension's name and position.

Exported models name their batch dimension in many ways (`batch`, `N`, `batch_size`, or not at
all: `?`, `unk__214`, `s0`), and not always first: sequence-first models take [seq, batch, feat],
recurrent states [layers, batch, hidden]. The rules, in order:
1. a dynamic dimension whose name says batch (`batch`, `batch_size`, `N`, `B`, `bs`, ...);
2. a dimension sharing its name with a batch dimension found in another input (equal names are
   equal values in ONNX);
3. a dynamic first dimension, unless its name says it is something else (`seq`, `time`, `T`,
   `height`, ...);
4. otherwise none; but an input with an unnamed dynamic dimension elsewhere is ambiguous: trtc
   cannot tell batch from length there, and asks for explicit shapes instead of guessing.
Inputs without dynamic dimensions (a scalar sample rate, a fixed-size table) never get one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

_BATCH_WORDS = {"bs", "nb"}  # besides any word containing "batch", and the names N and B alone
_OTHER_WORDS = {
    "seq",
    "sequence",
    "seqlen",
    "time",
    "times",
    "t",
    "len",
    "length",
    "lengths",
    "frames",
    "frame",
    "steps",
    "step",
    "height",
    "h",
    "width",
    "w",
    "depth",
    "d",
    "channels",
    "channel",
    "c",
    "features",
    "feature",
    "feat",
    "hidden",
    "tokens",
    "token",
    "pos",
    "position",
    "positions",
    "past",
    "total",
    "samples",
    "points",
    "boxes",
    "anchors",
    "heads",
    "head",
    "l",
    "s",
    "src",
    "tgt",
    "audio",
}
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")  # snake_case and camelCase words
# Names exporters generate when they know nothing about the dimension.
_ANONYMOUS = re.compile(r"^(\?|unk__\d+|s\d+|\d+|(.*_)?(dim|axis|dynamic_axes)_?\d+|unknown.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class BatchAxis:
    """The batch axis of one input: `axis` (None: the input has none), or why it is ambiguous."""

    axis: int | None
    ambiguous: str = ""


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(name)]


def says_batch(name: str) -> bool:
    words = _words(name)
    if _ANONYMOUS.match(name) or not words:
        return False
    return any("batch" in w or w in _BATCH_WORDS for w in words) or words in (["n"], ["b"])


def says_other(name: str) -> bool:
    """A name that describes a non-batch dimension (sequence length, image height, ...)."""
    return not _ANONYMOUS.match(name) and not says_batch(name) and any(w in _OTHER_WORDS for w in _words(name))


def batch_axes(inputs: Sequence[tuple[str, Sequence[int | str]]]) -> dict[str, BatchAxis]:
    """The batch axis of every input, given (name, dims) with dynamic dims as strings."""
    known = {d for _, dims in inputs for d in dims if isinstance(d, str) and says_batch(d)}
    found: dict[str, BatchAxis] = {}
    undecided = list(inputs)
    for positional in (False, True, False):  # semantic names; then leading dims; then their names elsewhere
        still = []
        for name, dims in undecided:
            axes = [i for i, d in enumerate(dims) if isinstance(d, str) and d != "?" and d in known]
            if len(axes) > 1:
                found[name] = BatchAxis(None, f"dimensions {', '.join(map(str, axes))} both look like the batch")
            elif axes:
                found[name] = BatchAxis(axes[0])
            elif positional and dims and isinstance(dims[0], str) and not says_other(dims[0]):
                found[name] = BatchAxis(0)
                if dims[0] != "?":
                    known.add(dims[0])
            else:
                still.append((name, dims))
        undecided = still
    for name, dims in undecided:
        unnamed = [i for i, d in enumerate(dims) if isinstance(d, str) and not says_other(d)]
        if unnamed:
            what = ", ".join(f"{i} ('{dims[i]}')" for i in unnamed)
            found[name] = BatchAxis(None, f"dynamic dimension {what} may or may not be the batch")
        else:
            found[name] = BatchAxis(None)
    return found

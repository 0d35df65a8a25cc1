"""Read the ONNX node names out of a kernel's `Metadata`, in every form TensorRT writes.

The forms seen: `[ONNX Layer: a]` groups joined by a \\x1f unit separator (or \\x1e, or nothing),
a TensorRT tag after a group (TensorRT-RTX's `[ONNX Layer: conv]__gemm_from_conv1x1`, last or
followed by more groups), and one group
naming several nodes joined by `+` or ` + `. A node name may itself contain `+`, `]`, `[ONNX
Layer: `, commas, spaces or newlines, so no split is right without knowing the model: given the
node names of the graph TensorRT parsed, the reading is the one made of known names that covers
the most text (then the fewest unknown characters, then the fewest names: a node named `a+b` is
that node, not `a` and `b`). A name the model lacks is kept, so the report can show it."""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left
from collections.abc import Collection

GROUP_OPEN = "[ONNX Layer: "
# What may follow a group's `]` before the next group: separators, and a TensorRT tag such as
# `__gemm_from_conv1x1` (seen between two groups in TensorRT-RTX's FP16 engines).
_AFTER_GROUP = re.compile(r"[\x1f\x1e \t\r\n,]*(?:__\w+[\x1f\x1e \t\r\n,]*)?")
_DELIMITERS = re.compile(r" \+ |\+|\]")


class NodeNames:
    """The node names of the graph TensorRT parsed, ready for reading many kernels' metadata."""

    def __init__(self, names: Collection[str]):
        self.names = frozenset(names)
        self.longest = max((len(name) for name in self.names), default=0)


def metadata_nodes(text: str, known: NodeNames | Collection[str] = ()) -> tuple[str, ...]:
    """The node names in `text`, in the order TensorRT wrote them; `known`: the node names of the
    graph TensorRT parsed (none: each group is read up to the `]` that closes it, as far as the
    text alone can tell)."""
    first = text.find(GROUP_OPEN)
    if first < 0:
        return ()
    graph = known if isinstance(known, NodeNames) else NodeNames(known)
    known, longest = graph.names, graph.longest
    delimiters = [(m.start(), m.group()) for m in _DELIMITERS.finditer(text)]
    # Paths through the text: a state is ("name", i), a name starts at i, or ("end", j), a group
    # closes with the `]` at j. Every step moves forward, so states settle in position order.
    best: dict[tuple[str, int], tuple[tuple[int, int], tuple | None, str | None]] = {
        ("name", first + len(GROUP_OPEN)): ((0, 0), None, None)
    }
    queue = [(first + len(GROUP_OPEN), 0, "name")]
    finished: list[tuple[int, tuple[int, int], tuple[str, int]]] = []
    while queue:
        position, _, kind = heapq.heappop(queue)
        state = (kind, position)
        cost = best[state][0]
        if kind == "name":
            for end, delimiter, unknown in _names_from(text, position, delimiters, known, longest):
                step = (cost[0] + (end - position if unknown else 0), cost[1] + 1)
                target = ("end", end) if delimiter == "]" else ("name", end + len(delimiter))
                if target not in best or step < best[target][0]:
                    if target not in best:
                        heapq.heappush(queue, (target[1], 1 if target[0] == "end" else 0, target[0]))
                    best[target] = (step, state, text[position:end])
        else:
            covered = min(position + 1, len(text))
            finished.append((covered, cost, state))
            following = _after_group(text, position)
            if text.startswith(GROUP_OPEN, following):
                target = ("name", following + len(GROUP_OPEN))
                if target not in best or cost < best[target][0]:
                    if target not in best:
                        heapq.heappush(queue, (target[1], 0, "name"))
                    best[target] = (cost, state, None)
    _, _, state = max(finished, key=lambda item: (item[0], -item[1][0], -item[1][1]))
    names: list[str] = []
    while state is not None:
        _, previous, name = best[state]
        if name is not None:
            names.append(name)
        state = previous
    return tuple(name for name in reversed(names) if name)


def _names_from(text: str, start: int, delimiters: list[tuple[int, str]], known, longest: int):
    """(end, delimiter, unknown) for each name that can start at `start`: a known name followed
    by ` + `, `+` or `]`; and, as an unknown name, the text up to the `]` that most likely closes
    the group (the first `]` followed by another group or by the end, else the first `]`)."""
    first_close = closes_group = None
    for index in range(bisect_left(delimiters, (start, "")), len(delimiters)):
        end, delimiter = delimiters[index]
        if end - start > longest and closes_group is not None:
            break
        if end - start <= longest and text[start:end] in known:
            yield end, delimiter, False
        if delimiter == "]" and closes_group is None:
            first_close = end if first_close is None else first_close
            following = _after_group(text, end)
            if following == len(text) or text.startswith(GROUP_OPEN, following):
                closes_group = end
    close = closes_group if closes_group is not None else first_close
    yield (len(text) if close is None else close), "]", True  # no `]` at all: the record was cut short


def _after_group(text: str, close: int) -> int:
    """Where the next group may start after the `]` at `close`: past separators and a TensorRT tag."""
    return _AFTER_GROUP.match(text, close + 1).end()

"""`precision.keep_fp32` names the user's nodes (globs on names or op types), but precision works
on the graph after trtc's passes, where a merged or folded node has a new name. A pattern that
names a user node applies to the node that now stands for it; a pattern that names nothing at all
is a likely typo, and the user hears of it."""

from __future__ import annotations

import fnmatch

import onnx


def resolve_keep_fp32(
    patterns: tuple[str, ...], model: onnx.ModelProto, origins: dict[str, tuple[str, ...]], user_nodes: dict[str, str]
) -> tuple[tuple[str, ...], list[str]]:
    """The patterns plus the exact names of the pass-made nodes whose user nodes they match; and
    one warning per pattern that matches no node name or op type, before or after the passes."""
    if not patterns:
        return (), []
    standing_for = [
        name for name, users in origins.items() if any(fnmatch.fnmatchcase(u, p) for u in users for p in patterns)
    ]
    names = [*user_nodes, *(n.name for n in model.graph.node)]
    op_types = {*user_nodes.values(), *(n.op_type for n in model.graph.node)}
    warnings = [
        f"precision.keep_fp32: '{pattern}' matches no node name or op type of the model; check the spelling"
        for pattern in patterns
        if not any(fnmatch.fnmatchcase(text, pattern) for text in [*names, *op_types])
    ]
    return tuple(dict.fromkeys([*patterns, *standing_for])), warnings

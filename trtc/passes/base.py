"""The pass interface and the runner.

A pass rewrites an ONNX graph in place and returns one `Change` per rewrite, so the report can
list every fusion and a verifier can drop a single change (by re-running with that change's
`nodes_before` in `PassContext.exclude`). Passes never change the value of a graph output and
never touch excluded nodes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import onnx

from trtc.errors import BuildError
from trtc.graph.weights import structure_of


@dataclass(frozen=True)
class Change:
    pass_name: str
    kind: str  # "fold", "remove", "merge"
    nodes_before: tuple[str, ...]
    nodes_after: tuple[str, ...]
    note: str = ""
    flops_before: int | None = None
    flops_after: int | None = None
    mac_before: int | None = None
    mac_after: int | None = None

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in self.__dict__.items()}


@dataclass(frozen=True)
class PassContext:
    exclude: frozenset[str] = frozenset()  # node names a pass must not touch


class GraphPass(Protocol):
    name: str
    description: str

    def run(self, model: onnx.ModelProto, context: PassContext) -> list[Change]: ...


@dataclass
class PassRun:
    name: str
    seconds: float
    changes: list[Change] = field(default_factory=list)
    round: int = 0
    # The graph this run left (structure only, no large weights) when it changed something: the
    # nodes it made are priced there, also those a later change rewrote again (a few hundred KB).
    graph: onnx.ModelProto | None = None


MAX_ROUNDS = 4  # folding can enable merging and back; real graphs settle in two rounds


def run_passes(model: onnx.ModelProto, passes: list[GraphPass], context: PassContext = PassContext()) -> list[PassRun]:
    """Run `passes` in order, repeatedly until none changes anything (bounded)."""
    runs: list[PassRun] = []
    for round_index in range(MAX_ROUNDS):
        changed = False
        for graph_pass in passes:
            started = time.perf_counter()
            try:
                changes = graph_pass.run(model, context)
            except Exception as exc:  # noqa: BLE001 - a failing pass is a trtc bug; name it
                raise BuildError(
                    f"graph pass '{graph_pass.name}' failed: {type(exc).__name__}: {exc}; "
                    f"switch it off with fusion: {{disable: [{graph_pass.name}]}} and report the bug"
                ) from exc
            seconds = time.perf_counter() - started
            runs.append(
                PassRun(graph_pass.name, seconds, changes, round_index, structure_of(model) if changes else None)
            )
            changed |= bool(changes)
        if not changed:
            break
    return runs


def settled(runs: list[PassRun]) -> bool:
    """False when the last allowed round still changed the graph: more was possible, and the
    report should say so rather than stop silently."""
    return not any(run.changes for run in runs if run.round == MAX_ROUNDS - 1)


def attach_costs(runs: list[PassRun], before: dict, after: dict, made: dict | None = None) -> None:
    """Fill each change's FLOPs/MAC, priced in the graph it rewrote: `nodes_before` as they stood
    then (the original graph's, or as the change that made them priced them), `nodes_after` as
    made (in the final graph, or where a later change rewrote them, in the graph of the run that
    made them: `made`, keyed by (run index, node)). So a chain (fold-batchnorm, then fold-bias on
    its product) saves what each rewrite removed, and the changes add up to `before` minus
    `after`. Costs are objects with `flops` and `mac_bytes`."""
    made = made or {}
    standing = dict(before)  # node -> its cost as the graph now stands
    for index, run in enumerate(runs):
        priced = []
        for change in run.changes:
            old = [standing.pop(n, None) for n in change.nodes_before]
            new = [after[n] if n in after else made.get((index, n)) for n in change.nodes_after]
            standing.update({n: c for n, c in zip(change.nodes_after, new) if c is not None})
            priced.append(
                replace(
                    change,
                    flops_before=sum(c.flops for c in old if c),
                    mac_before=sum(c.mac_bytes for c in old if c),
                    flops_after=sum(c.flops for c in new if c),
                    mac_after=sum(c.mac_bytes for c in new if c),
                )
            )
        run.changes = priced


def node_origins(runs: list[PassRun]) -> dict[str, tuple[str, ...]]:
    """For every node a pass produced, the original nodes it stands for (through chains of
    changes): how the report maps TensorRT's kernels back to the user's ONNX nodes."""
    return _lineage(runs)[0]


def removed_nodes(runs: list[PassRun]) -> dict[str, str]:
    """The original nodes that the passes removed, each with the pass that removed the last of
    what stood for it. A node a change replaced lives on in what replaced it."""
    origins, living, removed = _lineage(runs)
    standing = {original for name in living for original in origins[name]}
    return {name: pass_name for name, pass_name in removed.items() if name not in standing}


def _lineage(runs: list[PassRun]) -> tuple[dict[str, tuple[str, ...]], set[str], dict[str, str]]:
    """(origins of every produced node, the produced nodes still in the graph, original node ->
    the last pass that removed something standing for it)."""
    origins: dict[str, tuple[str, ...]] = {}
    living: set[str] = set()
    removed: dict[str, str] = {}
    for run in runs:
        for change in run.changes:
            sources = tuple(dict.fromkeys(o for name in change.nodes_before for o in origins.get(name, (name,))))
            living.difference_update(change.nodes_before)
            living.update(change.nodes_after)
            origins.update(dict.fromkeys(change.nodes_after, sources))
            if not change.nodes_after:
                removed.update(dict.fromkeys(sources, change.pass_name))
    return origins, living, removed

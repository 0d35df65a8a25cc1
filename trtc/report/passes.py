"""The "passes" report section: every change each graph pass made, and what it saved."""

from __future__ import annotations

from trtc.passes.base import PassRun, settled


def passes_section(runs: list[PassRun]) -> dict:
    changes = [change for run in runs for change in run.changes]
    per_pass: dict[str, dict] = {}
    for run in runs:
        entry = per_pass.setdefault(run.name, {"pass": run.name, "seconds": 0.0, "changes": 0})
        entry["seconds"] = round(entry["seconds"] + run.seconds, 6)
        entry["changes"] += len(run.changes)
    priced = [c for c in changes if c.mac_before is not None]
    return {
        "rounds": max((run.round for run in runs), default=-1) + 1,
        "settled": settled(runs),
        "passes": list(per_pass.values()),
        "changes": [change.to_dict() for change in changes],
        "totals": {
            "changes": len(changes),
            "nodes_removed": sum(len(c.nodes_before) - len(c.nodes_after) for c in changes),
            "flops_saved": sum(c.flops_before - c.flops_after for c in priced) if priced else None,
            "mac_saved": sum(c.mac_before - c.mac_after for c in priced) if priced else None,
        },
    }

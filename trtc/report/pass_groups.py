"""Graph-pass changes grouped for people (no heavy imports: the job summary of an up-to-date
build renders Markdown without onnx)."""

from __future__ import annotations


def grouped_changes(changes: list[dict]) -> list[dict]:
    """The report's changes as people read them: changes of one pass with the same note (39
    BatchNorms folded the same way) are one group, with summed costs; groups in order of their
    first change. A cost is None when any change of the group has it unknown."""
    groups: dict[tuple[str, str], dict] = {}
    for change in changes:
        group = groups.setdefault(
            (change["pass_name"], change["note"]),
            {"pass_name": change["pass_name"], "note": change["note"], "changes": []},
        )
        group["changes"].append(change)
    for group in groups.values():
        for key in ("flops_before", "flops_after", "mac_before", "mac_after"):
            values = [change[key] for change in group["changes"]]
            group[key] = None if any(value is None for value in values) else sum(values)
    return list(groups.values())

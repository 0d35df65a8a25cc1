"""What every build report the test suite makes must satisfy: the fusion map accounts for every
ONNX node of the model in exactly one place (a kernel, removed by a named trtc pass, or evaluated
by TensorRT at build time), names no node the model lacks, and its FLOPs add up: the model's,
minus what the passes saved, is before fusion; that is what the kernels compute plus what
TensorRT evaluated at build time.

`tests/conftest.py` applies `check_report_file` to every report a test's builds wrote."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

ONNX_LAYER = "[ONNX Layer: "


def check_report_file(path: Path) -> None:
    """`assert_accounts_for_every_node` on a file, when it is a build report with a fusion map."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(report, dict) and report.get("schema") == "trtc.report/1" and report.get("fusion"):
        assert_accounts_for_every_node(report, str(path))


def assert_accounts_for_every_node(report: dict, where: str = "report") -> None:
    fusion, cost = report["fusion"], report["cost"]
    model_nodes = [node["name"] for node in cost["nodes"]]
    known = set(model_nodes)
    in_kernels = {name for kernel in fusion["kernels"] for name in kernel["onnx_nodes"] if name in known}
    removed = {node["name"]: node["pass"] for node in fusion["removed_nodes"]}
    at_build_time = [node["name"] for node in fusion["folded_nodes"]]
    places = Counter([*in_kernels, *removed, *at_build_time])
    problems = [
        f"{name!r} is in {places[name]} places (kernels, removed by a pass, evaluated at build time)"
        for name in model_nodes
        if places[name] != 1
    ]
    problems += [f"{name!r} is listed but is no node of the model" for name in places if name not in known]
    problems += [
        f"kernel {kernel['index']} names no node though TensorRT wrote {kernel['metadata']!r}"
        for kernel in fusion["kernels"]
        if ONNX_LAYER in kernel["metadata"] and not kernel["built_nodes"]
    ]
    if fusion["unknown_metadata_nodes"]:
        problems.append(f"kernels name nodes trtc does not know: {fusion['unknown_metadata_nodes']}")
    counts = fusion["counts"]
    if (counts["onnx_nodes"], counts["nodes_in_kernels"], counts["removed_nodes"], counts["folded_nodes"]) != (
        len(model_nodes),
        len(in_kernels),
        len(removed),
        len(at_build_time),
    ):
        problems.append(f"counts {counts} disagree with the lists")
    problems += _pass_removals(report.get("passes") or {}, removed, known)
    kernel_flops = sum(kernel["flops"] for kernel in fusion["kernels"])
    after, before = cost["after_fusion"]["flops"], cost["before_fusion"]["flops"]
    saved_by_passes = ((report.get("passes") or {}).get("totals") or {}).get("flops_saved") or 0
    if (
        kernel_flops != after
        or after + cost["build_time_flops"] != before
        or cost["onnx_model"]["flops"] - saved_by_passes != before
    ):
        problems.append(
            f"FLOPs do not add up: model {cost['onnx_model']['flops']}, saved by passes {saved_by_passes}, "
            f"before fusion {before}, evaluated at build time {cost['build_time_flops']}, "
            f"after fusion {after}, sum over kernels {kernel_flops}"
        )
    assert not problems, f"{where}:\n  " + "\n  ".join(problems)


def _pass_removals(passes: dict, removed: dict[str, str], known: set[str]) -> list[str]:
    """A model node a pass change removed outright is listed as removed by that pass; a node
    listed as removed was touched by some pass change."""
    changes = passes.get("changes", [])
    touched = {name for change in changes for name in change["nodes_before"]}
    ran = {change["pass_name"] for change in changes}
    problems = [
        f"{name!r} removed by {change['pass_name']} but listed as {removed.get(name, 'not removed')!r}"
        for change in changes
        if not change["nodes_after"]
        for name in change["nodes_before"]
        if name in known and removed.get(name) != change["pass_name"]
    ]
    return problems + [
        f"{name!r} listed as removed by {pass_name!r}, which changed no such node"
        for name, pass_name in removed.items()
        if name not in touched or pass_name not in ran
    ]

"""What every build report the test suite makes must satisfy: the fusion map accounts for every
ONNX node of the user's model file in exactly one place (a kernel, removed by a named trtc pass,
evaluated by TensorRT at build time, or pruned before the passes: by `outputs:` or by pinning),
names no node the file lacks, and its FLOPs add up: the model's, minus what the passes saved, is
before fusion; that is what the kernels compute plus what TensorRT evaluated at build time.

`tests/conftest.py` applies `check_report_file` to every report a test's builds wrote."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import onnx

from trtc.graph.io import name_unnamed_nodes

ONNX_LAYER = "[ONNX Layer: "
ADDED = "(added by trtc)"


def check_report_file(path: Path) -> None:
    """`assert_accounts_for_every_node` on a file, when it is a build report with a fusion map."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(report, dict) and report.get("schema") == "trtc.report/1" and report.get("fusion"):
        assert_accounts_for_every_node(report, str(path), model_file_nodes(path, report))


def model_file_nodes(path: Path, report: dict) -> list[str] | None:
    """The node names of the model file `report` (at `path`) was built from, unnamed nodes named as
    trtc names them; None when the spec beside it is gone, the file changed since, or its weights
    are external (then the report's own counts are checked)."""
    build = report["build"]
    for folder in list(path.parents)[:3]:
        spec, model = folder / str(build.get("spec")), folder / str(build.get("model"))
        if spec.is_file() and model.is_file():
            raw = model.read_bytes()
            if hashlib.sha256(raw).hexdigest() != build.get("model_sha256"):
                return None
            graph = onnx.load_from_string(raw).graph
            name_unnamed_nodes(graph)
            return [node.name for node in graph.node]
    return None


def assert_accounts_for_every_node(report: dict, where: str = "report", model_nodes: list[str] | None = None) -> None:
    """`model_nodes`: the names of the model file's nodes; without them, the nodes the report
    places, counted against what the report's `graph` section says the file holds."""
    fusion, cost, graph = report["fusion"], report["cost"], report.get("graph") or {}
    removed = {node["name"]: node["pass"] for node in fusion["removed_nodes"]}
    at_build_time = [node["name"] for node in fusion["folded_nodes"]]
    unnamed = [node["name"] for node in fusion.get("unnamed_nodes", [])]
    pruned = {node["name"]: node["by"] for node in fusion.get("pruned_nodes", [])}
    in_kernels = {
        name
        for kernel in fusion["kernels"]
        for name, op_type in zip(kernel["onnx_nodes"], kernel["onnx_op_types"])
        if not op_type.endswith(ADDED)
    }
    places = Counter([*in_kernels, *removed, *at_build_time, *unnamed, *pruned])
    if model_nodes is None:
        model_nodes = list(places)
    known = set(model_nodes)
    problems = [
        f"{name!r} is in {places[name]} places (kernels, removed by a pass, evaluated at build time, unnamed, pruned)"
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
    listed = (len(model_nodes), len(in_kernels & known), len(removed), len(at_build_time), len(unnamed), len(pruned))
    if (
        counts["onnx_nodes"],
        counts["nodes_in_kernels"],
        counts["removed_nodes"],
        counts["folded_nodes"],
        counts.get("unnamed_nodes", 0),
        counts.get("pruned_nodes", 0),
    ) != listed:
        problems.append(f"counts {counts} disagree with the lists")
    if "onnx_nodes" in graph and counts["onnx_nodes"] != graph["onnx_nodes"] + len(graph["pruned_nodes"]):
        problems.append(
            f"the fusion map counts {counts['onnx_nodes']} nodes; the model file holds {graph['onnx_nodes']} kept "
            f"and {len(graph['pruned_nodes'])} pruned by outputs"
        )
    problems += [
        f"{name!r} pruned by outputs but listed as {pruned.get(name, 'not pruned')!r}"
        for name in graph.get("pruned_nodes", [])
        if pruned.get(name) != "outputs"
    ]
    resolved = [entry["node"] for entry in (report.get("pinning") or {}).get("resolved_control_flow", [])]
    problems += _pass_removals(report.get("passes") or {}, removed, known, resolved)
    kernel_flops = sum(kernel["flops"] for kernel in fusion["kernels"]) + cost.get("unnamed_flops", 0)
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
            f"after fusion {after}, sum over kernels and unnamed nodes {kernel_flops}"
        )
    assert not problems, f"{where}:\n  " + "\n  ".join(problems)


def _pass_removals(passes: dict, removed: dict[str, str], known: set[str], resolved: list[str]) -> list[str]:
    """A model node a pass change removed outright is listed as removed by that pass; a node
    listed as removed was touched by some pass change (or, an If or Loop pinning resolved, by way
    of the nodes it became)."""
    changes = passes.get("changes", [])
    touched = {name for change in changes for name in change["nodes_before"]} | set(resolved)
    ran = {change["pass_name"] for change in changes}
    problems = [
        f"{name!r} removed by {change['pass_name']} but listed as {removed.get(name, 'not removed')!r}"
        for change in changes
        if not change["nodes_after"]
        for name in change["nodes_before"]
        if name in known and removed.get(name) != change["pass_name"]
    ]
    problems += [
        f"{name!r} listed as removed by {pass_name!r}, which changed no such node"
        for name, pass_name in removed.items()
        if name not in touched or pass_name not in ran
    ]
    # A change is priced in the graph it rewrote: what it makes computes something, also when a
    # later change rewrites it again (then it was priced at nothing, and the later change at a gain).
    return problems + [
        f"{change['pass_name']} change on {change['nodes_before']} priced what it made at 0 FLOPs or 0 bytes"
        for change in changes
        if change["nodes_after"]
        and any((change[f"{key}_before"] or 0) > 0 and change[f"{key}_after"] == 0 for key in ("flops", "mac"))
    ]

"""The fusion map: which ONNX nodes each engine kernel covers and in which precision it runs.
Every node of the user's model file is in exactly one place: in kernels (one or several: a Split
feeding two branches; an If or Loop that pinning resolved is where the nodes it became are),
removed by a named trtc pass, evaluated by TensorRT at build time (no kernel names it and it
reads no input's values: constant and shape arithmetic), unnamed (it computes on the inputs, so
it ran, but no kernel's metadata names it: fused without a trace, or a view TensorRT elided), or
pruned before the passes (by `outputs:`, or folded by pinning)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection

from trtc.backend.engine_info import EngineInfo, Kernel, KernelTensor
from trtc.backend.layer_metadata import NodeNames, metadata_nodes


def fusion_map(
    engine: EngineInfo,
    onnx_nodes: dict[str, str],
    origins: dict[str, tuple[str, ...]] | None = None,
    added: dict[str, str] | None = None,
    removed: dict[str, str] | None = None,
    pruned: dict[str, str] | None = None,
    value_dependent: Collection[str] = (),
) -> dict:
    """`onnx_nodes` maps the user's node names -> op types, in graph order; `origins` maps nodes
    that trtc produced (passes, pinning) to the user's nodes they stand for; `added` names nodes
    trtc added (precision casts, Q/DQ) with their op types; `removed` maps the user's nodes that
    trtc's passes removed to the pass that did; `pruned`, those gone before the passes to the step
    ("outputs", "pinning"); `value_dependent`, nodes that compute on the inputs' values
    (graph/runtime_values.py). Plain data for the report."""
    origins, added, removed, pruned = origins or {}, added or {}, removed or {}, pruned or {}
    op_types = {**{name: f"{op} (added by trtc)" for name, op in added.items()}, **onnx_nodes}
    every_profile = engine.compute_kernels
    profile = kernel_profiles(every_profile)
    # TensorRT compiles one kernel set per optimization profile: the map is profile 0's (the
    # engine a request runs is one of them), and the others are counted.
    compute = [kernel for kernel, index in zip(every_profile, profile) if index == 0]
    parsed = _parsed_graph(onnx_nodes, origins, added, {**removed, **pruned})
    built = [tuple(dict.fromkeys(metadata_nodes(kernel.metadata, parsed))) for kernel in compute]
    expanded = [tuple(dict.fromkeys(o for n in nodes for o in origins.get(n, (n,)))) for nodes in built]
    covered = Counter(node for nodes in expanded for node in nodes)
    kernels = [
        _kernel_entry(index, kernel, nodes, names, op_types)
        for index, (kernel, nodes, names) in enumerate(zip(compute, expanded, built))
    ]
    gone = [
        {"name": name, "op_type": op, "pass": removed[name]}
        for name, op in onnx_nodes.items()
        if name in removed and name not in covered
    ]
    before_passes = [
        {"name": name, "op_type": op, "by": pruned[name]}
        for name, op in onnx_nodes.items()
        if name in pruned and name not in covered
    ]
    without_kernel = [
        {"name": name, "op_type": op}
        for name, op in onnx_nodes.items()
        if name not in covered and name not in removed and name not in pruned
    ]
    value_dependent = set(value_dependent)
    folded = [node for node in without_kernel if node["name"] not in value_dependent]
    unnamed = [node for node in without_kernel if node["name"] in value_dependent]
    fused = [k for k in kernels if len(k["onnx_nodes"]) > 1]
    precisions = Counter(k["precision"] or "none" for k in kernels)
    return {
        "source": engine.source,
        "counts": {
            "onnx_nodes": len(onnx_nodes),
            "kernels": len(compute),
            "fused_kernels": len(fused),
            "nodes_in_kernels": sum(1 for name in onnx_nodes if name in covered),
            "removed_nodes": len(gone),
            "folded_nodes": len(folded),
            "unnamed_nodes": len(unnamed),
            "pruned_nodes": len(before_passes),
            "sync_layers": len(engine.kernels) - len(every_profile),
            "streams": len({k.stream for k in compute}),
            "kernels_per_profile": dict(sorted(Counter(profile).items())),
        },
        "precisions": dict(sorted(precisions.items())),
        "kernels": kernels,
        "removed_nodes": gone,  # removed by trtc's passes, with the pass
        "folded_nodes": folded,  # evaluated by TensorRT at build time: no kernel names them
        "unnamed_nodes": unnamed,  # ran, but no kernel names them: they compute on the inputs' values
        "pruned_nodes": before_passes,  # gone before the passes: by outputs: or pinning
        "folded_by_op_type": dict(Counter(node["op_type"] for node in folded).most_common()),
        "unnamed_by_op_type": dict(Counter(node["op_type"] for node in unnamed).most_common()),
        "nodes_in_several_kernels": sorted(name for name, count in covered.items() if count > 1),
        "unknown_metadata_nodes": sorted(name for name in covered if name not in op_types),
        "optimizer_stages": [{"stage": stage, "layers": count} for stage, count in engine.optimizer_stages],
    }


_PROFILE_TAG = re.compile(r" \[profile (\d+)\]")
_MYELIN_GRAPH = re.compile(r"_myl(\d+)_\d+$")


def kernel_profiles(kernels: list[Kernel]) -> list[int]:
    """The optimization profile each kernel serves. TensorRT tags the layers and tensors of
    profiles after the first with ' [profile N]'; a kernel with no tagged name (a generated
    Myelin kernel over internal tensors) belongs to the profile of its Myelin graph's other
    kernels; anything else to profile 0."""
    tagged: list[int | None] = []
    for kernel in kernels:
        names = [kernel.name, *(t.name for t in (*kernel.inputs, *kernel.outputs))]
        found = {int(m.group(1)) for name in names for m in _PROFILE_TAG.finditer(name)}
        tagged.append(found.pop() if len(found) == 1 else None)
    graph_profile: dict[str, set[int]] = {}
    for kernel, profile in zip(kernels, tagged):
        graph = _MYELIN_GRAPH.search(kernel.name)
        if graph and profile is not None:
            graph_profile.setdefault(graph.group(1), set()).add(profile)
    resolved = []
    for kernel, profile in zip(kernels, tagged):
        if profile is None:
            graph = _MYELIN_GRAPH.search(kernel.name)
            known = graph_profile.get(graph.group(1), set()) if graph else set()
            profile = next(iter(known)) if len(known) == 1 else 0
        resolved.append(profile)
    return resolved


def _parsed_graph(
    onnx_nodes: dict[str, str], origins: dict[str, tuple[str, ...]], added: dict[str, str], removed: dict[str, str]
) -> NodeNames:
    """The node names of the graph TensorRT parsed: the user's nodes no pass replaced or removed,
    the nodes the passes produced, and the ones trtc added."""
    replaced = {name for sources in origins.values() for name in sources}
    return NodeNames([*(name for name in onnx_nodes if name not in replaced and name not in removed), *origins, *added])


def _kernel_entry(
    index: int, kernel: Kernel, expanded: tuple[str, ...], built: tuple[str, ...], onnx_nodes: dict[str, str]
) -> dict:
    nodes = list(expanded)
    return {
        "index": index,
        "name": kernel.name,
        "type": kernel.layer_type,
        "precision": kernel.precision,
        "onnx_nodes": nodes,
        "onnx_op_types": [onnx_nodes.get(node, "?") for node in nodes],
        "built_nodes": list(built),  # names in the graph TensorRT parsed
        "metadata": kernel.metadata,  # as TensorRT wrote it
        "inputs": [_tensor(t) for t in kernel.inputs],
        "outputs": [_tensor(t) for t in kernel.outputs],
        "constants": [_tensor(t) for t in kernel.constants],
        "tactic": kernel.tactic,
        "stream": kernel.stream,
    }


def _tensor(tensor: KernelTensor) -> dict:
    return {"name": tensor.name, "dims": list(tensor.dims), "dtype": tensor.dtype, "format": tensor.format}

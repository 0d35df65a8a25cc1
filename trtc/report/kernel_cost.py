"""Costs of the engine's kernels and a roofline estimate for a target GPU.

Kernel MAC is the bytes of the kernel's real inputs, outputs and constants in their real
TensorRT datatypes. Kernel FLOPs are the sum over the model's nodes it covers, each node counted
once, in the kernel that computes it (the one TensorRT named after it, else one of a kernel type
that runs its op, else the first that names it), at the node's FLOPs after trtc's passes: the
casts and Q/DQ trtc adds for precision compute none of the model's FLOPs, so a model has the same
FLOPs in every precision. A node no kernel names that computes on the inputs' values ran anyway
(fused without a trace): it counts in `unnamed_flops`, part of the after-fusion FLOPs. The others
TensorRT evaluated at build time: `build_time_flops`; after-fusion FLOPs plus those are the
before-fusion FLOPs. Before fusion every
node of the graph TensorRT parsed (after passes and precision) reads and writes memory at its own
datatype; after fusion only kernel boundaries do: so the saving is fusion's alone, not the passes'
(their own section) nor reduced precision's. `onnx_model` keeps the totals of the model as the
user gave it.
Estimated time = max(2 * FLOPs / peak rate for the kernel's precision, bytes / bandwidth): FLOPs
count multiply-adds once and vendors' peak rates count them twice.

Dynamic dimensions (-1) of a kernel tensor take the first profile's opt shapes: a tensor that
names an ONNX tensor (TensorRT's Myelin adds suffixes such as `.1_myl0`, and may flatten it) has
that tensor's element count at opt; any other -1 takes the opt value when every dynamic
dimension of the profile has the same one (the usual dynamic batch); otherwise its size, and the
kernel's, is unknown (None), never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from functools import lru_cache
from importlib import resources

from trtc.errors import SpecError, closest
from trtc.graph.cost import NodeCost

_BYTES = {
    "Float": 4,
    "Half": 2,
    "BFloat16": 2,
    "Int8": 1,
    "UInt8": 1,
    "FP8": 1,
    "Bool": 1,
    "Int32": 4,
    "Int64": 8,
    "Int4": 0.5,
    "FP4": 0.5,
}
_PEAK_KEY = {"Float": "fp32", "Half": "fp16", "BFloat16": "bf16", "Int8": "int8", "FP8": "fp8", "FP4": "fp4"}


@lru_cache(maxsize=1)
def gpu_table() -> dict:
    return json.loads(resources.files("trtc.report").joinpath("gpus.json").read_text())


def choose_gpu(name: str | None, compute_capabilities: tuple[str, ...]) -> dict | None:
    table = gpu_table()
    by_name = {gpu["name"].lower(): gpu for gpu in table["gpus"]}
    if name:
        gpu = by_name.get(name.lower())
        if gpu is None:
            hint = closest(name, [g["name"] for g in table["gpus"]])
            valid = ", ".join(g["name"] for g in table["gpus"])
            raise SpecError(
                f"target.gpu: unknown GPU '{name}'"
                + (f"; did you mean '{hint}'?" if hint else "")
                + f" (known: {valid})"
            )
        return gpu
    for capability in compute_capabilities:
        default = table["default_for_compute_capability"].get(capability)
        if default:
            return by_name[default.lower()]
    return None


def dynamic_value(profile: dict) -> int | None:
    """The opt value that stands for every -1 in kernel shapes: only defined when all dynamic
    dimensions of the first profile share one opt value (the usual dynamic batch)."""
    values = {r.opt[axis] for r in profile.values() for axis in range(len(r.min)) if r.min[axis] != r.max[axis]}
    return values.pop() if len(values) == 1 else (None if values else 1)


def cost_section(
    fusion: dict,
    costs: dict[str, NodeCost],
    gpu: dict | None,
    dynamic: int | None,
    opt_elements: dict[str, int] | None = None,
    built_costs: dict[str, NodeCost] | None = None,
    graph_costs: dict[str, NodeCost] | None = None,
    value_dependent: Collection[str] = (),
) -> dict:
    """Adds flops/mac_bytes/estimate to each kernel of `fusion` (in place) and returns totals
    plus every node's cost. `costs`: the user's nodes; `graph_costs`: the nodes after trtc's
    passes, before precision (their FLOPs are the model's); `built_costs`: the nodes of the graph
    TensorRT parsed (the same two when trtc changed nothing); `opt_elements`: element counts of
    ONNX tensors at opt shapes; `value_dependent`: nodes that compute on the inputs' values."""
    built = built_costs if built_costs is not None else costs
    model = graph_costs if graph_costs is not None else built
    names_key = "built_nodes" if built_costs is not None else "onnx_nodes"
    kernels = fusion["kernels"]
    owners = _owners(kernels, names_key, {**built, **model})
    for kernel in kernels:
        kernel["flops"] = sum(model[n].flops for n in kernel[names_key] if owners.get(n) is kernel and n in model)
        kernel["mac_bytes"] = _kernel_bytes(kernel, dynamic, opt_elements or {})
        kernel.update(_estimate(kernel, gpu))
    before = {"flops": sum(c.flops for c in model.values()), "mac_bytes": sum(c.mac_bytes for c in built.values())}
    value_dependent = set(value_dependent)
    unnamed_flops = sum(c.flops for n, c in model.items() if n not in owners and n in value_dependent)
    known = [k["mac_bytes"] for k in kernels if k["mac_bytes"] is not None]
    after_mac = sum(known) if len(known) == len(kernels) else None
    section = {
        "convention": (
            "FLOPs count one per multiply-accumulate (design notes), the same in every precision: casts and Q/DQ "
            "added by trtc count none; MAC in bytes read + written; a node that several kernels name counts in "
            "the kernel that computes it"
        ),
        "onnx_model": {
            "flops": sum(c.flops for c in costs.values()),
            "mac_bytes": sum(c.mac_bytes for c in costs.values()),
        },
        "before_fusion": before,
        "after_fusion": {"flops": sum(k["flops"] for k in kernels) + unnamed_flops, "mac_bytes": after_mac},
        "unnamed_flops": unnamed_flops,  # nodes that ran though no kernel names them
        "build_time_flops": sum(c.flops for n, c in model.items() if n not in owners and n not in value_dependent),
        "mac_saved_bytes": before["mac_bytes"] - after_mac if after_mac is not None else None,
        "mac_saved_percent": round(100 * (before["mac_bytes"] - after_mac) / before["mac_bytes"], 2)
        if after_mac is not None and before["mac_bytes"]
        else None,
        "unknown_nodes": sorted({n for n, c in [*costs.items(), *built.items()] if not c.known}),
        "unresolved_kernels": [k["index"] for k in kernels if k["mac_bytes"] is None],
        "nodes": [
            {
                "name": name,
                "op_type": c.op_type,
                "flops": c.flops,
                "bytes_read": c.bytes_read,
                "bytes_written": c.bytes_written,
                "known": c.known,
                "reason": c.reason,
            }
            for name, c in costs.items()
        ],
        "gpu": {key: gpu[key] for key in ("name", "compute_capability", "bandwidth_gbs", "tflops", "source", "url")}
        if gpu
        else None,
        "basis": cost_basis(gpu),
    }
    if gpu:
        estimated = [k for k in kernels if k.get("estimated_us") is not None]
        # A total over some kernels only would read as the engine's time: none unless all are known.
        section["estimated_total_us"] = (
            round(sum(k["estimated_us"] for k in estimated), 3) if len(estimated) == len(kernels) else None
        )
        section["top_kernels"] = [k["index"] for k in sorted(estimated, key=lambda k: -k["estimated_us"])[:10]]
    return section


def cost_basis(gpu: dict | None) -> dict:
    """What each figure of the section is computed from: FLOPs and bytes are counted from shapes;
    times are estimates from them, never measured (no plan runs here)."""
    time = (
        f"each kernel's FLOPs and bytes on a roofline of the {gpu['name']} (peak rate for the kernel's precision, "
        f"{gpu['bandwidth_gbs']} GB/s); no GPU ran the plan"
        if gpu
        else "no target GPU is known (target.gpu or a compute capability in the spec): no time is estimated"
    )
    return {
        "flops": {
            "estimated": False,
            "from": "each ONNX node's shapes at the first profile's opt shapes, one per multiply-accumulate",
        },
        "mac_bytes": {
            "estimated": False,
            "from": "tensor sizes at the first profile's opt shapes: every node's inputs and outputs "
            "before fusion, each kernel's TensorRT tensors in their datatypes after",
        },
        "time": {"estimated": True, "from": time},  # estimated_us, estimated_total_us, bound
    }


# Kernel types in which an op's arithmetic runs, when a node is named by several kernels (a
# quantized convolution also names the kernel that casts and scales its input).
_COMPUTES = {
    "Conv": ("correlation", "convolution", "deconvolution"),
    "ConvTranspose": ("deconvolution", "correlation"),
    "MatMul": ("gemm", "matrix_multiply"),
    "Gemm": ("gemm", "matrix_multiply"),
}


def _owners(kernels: list[dict], names_key: str, built: dict[str, NodeCost]) -> dict[str, dict]:
    """The one kernel each node's FLOPs count in: the kernel TensorRT named after the node, else
    one of the kernel types that run that op, else one that runs a node it is named with (an
    epilogue runs where its producer runs; a cast kernel before it names it too), else the
    first kernel that names it."""
    candidates: dict[str, list[dict]] = {}
    for kernel in kernels:
        for node in kernel[names_key]:
            if node in built:
                candidates.setdefault(node, []).append(kernel)
    owners, undecided, running = {}, {}, set()
    for node, named_by in candidates.items():
        by_name = [k for k in named_by if f"+{node}+" in f"+{_without_suffixes(k['name'])}+"]
        by_type = [k for k in named_by if k["type"].lower() in _COMPUTES.get(built[node].op_type, ())]
        if by_name or by_type:
            owners[node] = (by_name or by_type)[0]
            running.add(id(owners[node]))
        else:
            undecided[node] = named_by
    for node, named_by in undecided.items():
        owners[node] = next((k for k in named_by if id(k) in running), named_by[0])
    return owners


def _without_suffixes(name: str) -> str:
    """'stem.conv+stem.bn_myl0_2' -> 'stem.conv+stem.bn'."""
    while (stripped := _TRT_SUFFIX.sub("", name)) != name:
        name = stripped
    return name


def _kernel_bytes(kernel: dict, dynamic: int | None, opt_elements: dict[str, int]) -> int | None:
    total = 0.0
    for tensor in [*kernel["inputs"], *kernel["outputs"], *kernel["constants"]]:
        elements = _elements(tensor["name"], tensor["dims"], dynamic, opt_elements)
        if elements is None:
            return None
        total += elements * _BYTES.get(tensor["dtype"], 4)
    return int(total)


_TRT_SUFFIX = re.compile(r"(_myl\d+|\.\d+|_\d+)$")


def _elements(name: str, dims: list[int], dynamic: int | None, opt_elements: dict[str, int]) -> int | None:
    static = 1
    for dim in dims:
        static *= dim if dim >= 0 else 1
    if all(dim >= 0 for dim in dims):
        return static
    while name:
        known = opt_elements.get(name)
        if known is not None and known % static == 0:
            return known
        stripped = _TRT_SUFFIX.sub("", name)
        name = "" if stripped == name else stripped
    if dynamic is None:
        return None
    return static * dynamic ** sum(1 for dim in dims if dim < 0)


def _estimate(kernel: dict, gpu: dict | None) -> dict:
    if gpu is None or kernel["mac_bytes"] is None:
        return {}
    peak = gpu["tflops"].get(_PEAK_KEY.get(kernel["precision"], "fp32"), gpu["tflops"]["fp32"])
    compute_us = 2 * kernel["flops"] / (peak * 1e12) * 1e6
    memory_us = kernel["mac_bytes"] / (gpu["bandwidth_gbs"] * 1e9) * 1e6
    return {
        "estimated_us": round(max(compute_us, memory_us), 4),
        "bound": "compute" if compute_us > memory_us else "memory",
    }

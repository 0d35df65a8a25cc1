"""The fusion map: which ONNX nodes each engine kernel covers, in which precision it runs, and
which ONNX nodes no kernel names (evaluated at build time or removed by TensorRT)."""

from __future__ import annotations

from collections import Counter

from trtc.backend.engine_info import EngineInfo, Kernel, KernelTensor


def fusion_map(engine: EngineInfo, onnx_nodes: dict[str, str]) -> dict:
    """`onnx_nodes` maps node name -> op type, in graph order. Plain data for the JSON report."""
    compute = engine.compute_kernels
    covered = Counter(node for kernel in compute for node in dict.fromkeys(kernel.onnx_nodes))
    kernels = [_kernel_entry(index, kernel, onnx_nodes) for index, kernel in enumerate(compute)]
    folded = [{"name": name, "op_type": op} for name, op in onnx_nodes.items() if name not in covered]
    fused = [k for k in kernels if len(k["onnx_nodes"]) > 1]
    precisions = Counter(k["precision"] or "none" for k in kernels)
    return {
        "source": engine.source,
        "counts": {
            "onnx_nodes": len(onnx_nodes),
            "kernels": len(compute),
            "fused_kernels": len(fused),
            "nodes_in_kernels": sum(1 for name in onnx_nodes if name in covered),
            "folded_nodes": len(folded),
            "sync_layers": len(engine.kernels) - len(compute),
            "streams": len({k.stream for k in compute}),
        },
        "precisions": dict(sorted(precisions.items())),
        "kernels": kernels,
        "folded_nodes": folded,
        "folded_by_op_type": dict(Counter(node["op_type"] for node in folded).most_common()),
        "nodes_in_several_kernels": sorted(name for name, count in covered.items() if count > 1),
        "unknown_metadata_nodes": sorted(name for name in covered if name not in onnx_nodes),
        "optimizer_stages": [{"stage": stage, "layers": count} for stage, count in engine.optimizer_stages],
    }


def _kernel_entry(index: int, kernel: Kernel, onnx_nodes: dict[str, str]) -> dict:
    nodes = list(dict.fromkeys(kernel.onnx_nodes))
    return {
        "index": index,
        "name": kernel.name,
        "type": kernel.layer_type,
        "precision": kernel.precision,
        "onnx_nodes": nodes,
        "onnx_op_types": [onnx_nodes.get(node, "?") for node in nodes],
        "inputs": [_tensor(t) for t in kernel.inputs],
        "outputs": [_tensor(t) for t in kernel.outputs],
        "constants": [_tensor(t) for t in kernel.constants],
        "tactic": kernel.tactic,
        "stream": kernel.stream,
    }


def _tensor(tensor: KernelTensor) -> dict:
    return {"name": tensor.name, "dims": list(tensor.dims), "dtype": tensor.dtype, "format": tensor.format}

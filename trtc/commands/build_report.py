"""The JSON report of one build, from the prepared graph, the checks' findings and TensorRT's
result (moved out of trtc/commands/pipeline.py, unchanged)."""

from __future__ import annotations

from datetime import datetime, timezone

from trtc import __version__
from trtc.backend.builder import BuildResult
from trtc.commands.observers import Recording
from trtc.commands.prepare import PreparedGraph, node_places
from trtc.graph.declared import compare
from trtc.graph.runtime_values import value_dependent_nodes
from trtc.incremental.stamps import portable_path
from trtc.report import REPORT_SCHEMA
from trtc.report.fusion import fusion_map
from trtc.report.kernel_cost import cost_section, dynamic_value
from trtc.spec.model import Spec


def build_report(
    spec: Spec, graph: PreparedGraph, trt, result: BuildResult, observer: Recording, gpu: dict | None
) -> dict:
    """The report; the output-shape warnings it finds are told to `observer`, whose warnings it ends with."""
    places, structures = node_places(graph), graph.finished.structures
    value_dependent = set().union(
        *(value_dependent_nodes(model) for model in (structures.original, structures.passed, structures.built))
    )
    # a node pinning or a pass replaced (an If by its branch) computes on the inputs when what stands for it does
    value_dependent |= {node for made, nodes in places["origins"].items() if made in value_dependent for node in nodes}
    fusion = fusion_map(result.engine, **places, value_dependent=value_dependent) if result.engine else None
    cost = (
        cost_section(
            fusion,
            graph.costs,
            gpu,
            dynamic_value(graph.profiles[0]),
            graph.opt_elements,
            graph.built_costs,
            graph.graph_costs,
            value_dependent,
        )
        if fusion
        else None
    )
    bindings = [
        {
            "name": b.name,
            "mode": b.mode,
            "dtype": b.dtype,
            "dims": list(b.dims),
            "profiles": [{"min": list(p.min), "opt": list(p.opt), "max": list(p.max)} for p in b.profiles],
        }
        for b in (result.engine.bindings if result.engine else ())
    ]
    report = {
        "schema": REPORT_SCHEMA,
        "build": {
            "name": spec.name,
            "trtc": __version__,
            "backend": trt.name,
            "backend_version": trt.version,
            "target": {
                "compute_capabilities": list(spec.target.compute_capabilities),
                "optimization_level": spec.target.optimization_level,
                "workspace": spec.workspace,
            },
            "spec": spec.source.name if spec.source else None,
            "spec_fingerprint": spec.fingerprint,
            "fingerprint": {
                **graph.fingerprint.as_dict(),
                "model_files": [portable_path(p, spec) for p in graph.fingerprint.model_files],
            },
            "model": portable_path(spec.model, spec),
            "model_sha256": graph.model_sha256,
            "plan": portable_path(spec.output.plan, spec),
            "plan_sha256": None,  # hashed beside the report
            "plan_bytes": len(result.plan),
            "build_seconds": round(result.seconds, 3),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "precision": {"mode": spec.precision.mode},  # replaced by the precision step's section
        "profiles": [{name: r.as_dict() for name, r in profile.items()} for profile in graph.profiles],
        "bindings": bindings,
        "plugins": [{**plugin.as_dict(), "path": portable_path(plugin.path, spec)} for plugin in result.plugins]
        or None,
        "fusion": fusion,
        "cost": cost,
        "warnings": None,  # below: every warning shown, these last ones included
    }
    report.update(graph.sections)
    report.update(graph.finished.sections)
    shapes = graph.sections.get("output_shapes")
    if shapes:
        binding_dims = {b["name"]: b["dims"] for b in report["bindings"] if b["mode"] == "Output"}
        rows, shape_warnings = compare(shapes["declared"], shapes["onnxruntime"], binding_dims)
        report["output_shapes"] = {
            "outputs": rows,
            "checked_at": "min shape of profile 0",
            "onnxruntime_not_run": shapes["not_run"] or None,
        }
        for warning in shape_warnings:
            observer.warning(warning)
    report["warnings"] = list(observer.warnings)
    return report

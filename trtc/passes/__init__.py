"""Graph passes run on the ONNX model before TensorRT sees it. `PASSES` is the registry, in
the order `default` runs them."""

from __future__ import annotations

from trtc.errors import SpecError
from trtc.passes.base import (
    Change,
    GraphPass,
    PassContext,
    PassRun,
    attach_costs,
    node_origins,
    removed_nodes,
    run_passes,
)
from trtc.passes.fold_batchnorm import FoldBatchNorm
from trtc.passes.fold_bias import FoldBiasAdd
from trtc.passes.fold_constants import FoldConstants
from trtc.passes.merge_siblings import MergeSiblings
from trtc.passes.remove_noops import RemoveNoOps
from trtc.spec.model import FusionSpec
from trtc.spec.validate import closest

PASSES: dict[str, type] = {
    cls.name: cls for cls in (RemoveNoOps, FoldConstants, FoldBatchNorm, FoldBiasAdd, MergeSiblings)
}
DEFAULT = list(PASSES)


def select_passes(fusion: FusionSpec) -> list[GraphPass]:
    """The passes the spec's `fusion` block asks for: `passes: default | none | [names]`, minus
    `disable: [names]`. Unknown names are spec errors that list the valid ones."""
    chosen = fusion.passes
    names = DEFAULT if chosen == "default" else [] if chosen == "none" else list(chosen)
    for key, listed in (
        ("fusion.passes", names if isinstance(chosen, tuple) else []),
        ("fusion.disable", fusion.disable),
    ):
        for name in listed:
            if name not in PASSES:
                hint = closest(name, PASSES)
                advice = f"did you mean '{hint}'?" if hint else f"valid passes: {', '.join(PASSES)}"
                raise SpecError(f"{key}: unknown pass '{name}'; {advice}")
    disabled = set(fusion.disable)
    return [PASSES[name]() for name in names if name not in disabled]


__all__ = [
    "select_passes",
    "PASSES",
    "DEFAULT",
    "Change",
    "GraphPass",
    "PassContext",
    "PassRun",
    "attach_costs",
    "node_origins",
    "removed_nodes",
    "run_passes",
]

"""What each graph pass change saved, when changes build on one another (fold-batchnorm, then
fold-bias on the same convolution, then merge-siblings of the folded convolutions): every change
is priced in the graph it rewrote, so it saves what that rewrite removed, and the changes add up to
the model's FLOPs and bytes before the passes minus after them."""

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tests import models
from tests.passes.helpers import batchnorm_params, model, weights
from trtc.commands.graph_checks import GraphStructures, graph_costs
from trtc.graph.weights import structure_of
from trtc.passes import attach_costs, run_passes, select_passes
from trtc.report.passes import passes_section
from trtc.spec.model import FusionSpec, ShapeRange

SHAPE = (2, 3, 8, 8)


def folded_siblings():
    """Two branches on x, each Conv -> BatchNormalization -> Add(constant bias)."""
    nodes, inits = [], []
    for branch in ("a", "b"):
        inits += [
            weights(f"w{branch}", (4, 3, 3, 3), seed=ord(branch)),
            *batchnorm_params(f"bn{branch}", 4),
            numpy_helper.from_array(np.full((1, 4, 1, 1), 0.5, np.float32), f"bias{branch}"),
        ]
        nodes += [
            helper.make_node("Conv", ["x", f"w{branch}"], [f"c{branch}"], name=f"conv{branch}", pads=[1, 1, 1, 1]),
            helper.make_node(
                "BatchNormalization",
                [f"c{branch}", *(f"bn{branch}.{k}" for k in ("scale", "bias", "mean", "var"))],
                [f"n{branch}"],
                name=f"bn{branch}",
            ),
            helper.make_node("Add", [f"n{branch}", f"bias{branch}"], [f"y{branch}"], name=f"add{branch}"),
        ]
    return model(nodes, {"x": ["N", 3, 8, 8]}, ["ya", "yb"], inits)


def priced_changes(graph: onnx.ModelProto):
    original = structure_of(graph)
    runs = run_passes(graph, select_passes(FusionSpec()))
    structures = GraphStructures(original, structure_of(graph), structure_of(graph))
    costs = graph_costs(structures, {"x": ShapeRange(SHAPE, SHAPE, SHAPE)}, runs)
    attach_costs(runs, costs.costs, costs.after_passes, costs.made)
    return passes_section(runs), costs


def test_changes_on_nodes_other_changes_made_save_what_they_removed_and_add_up():
    section, costs = priced_changes(folded_siblings())
    assert [(c["pass_name"], c["nodes_before"]) for c in section["changes"]] == [
        ("fold-batchnorm", ["conva", "bna"]),
        ("fold-batchnorm", ["convb", "bnb"]),
        ("fold-bias", ["conva+bna", "adda"]),
        ("fold-bias", ["convb+bnb", "addb"]),
        ("merge-siblings", ["conva+bna+adda", "convb+bnb+addb"]),
    ]
    conv, bn, add = (costs.costs[name].flops for name in ("conva", "bna", "adda"))
    saved = [c["flops_before"] - c["flops_after"] for c in section["changes"]]
    assert saved == [bn, bn, add, add, 0]  # a merge computes the same products, in one layer
    fold_bias = section["changes"][2]
    assert fold_bias["flops_before"] == conv + add and fold_bias["flops_after"] == conv
    for key, figure in (("flops", "flops_saved"), ("mac_bytes", "mac_saved")):
        total = sum(getattr(c, key) for c in costs.costs.values()) - sum(
            getattr(c, key) for c in costs.after_passes.values()
        )
        assert section["totals"][figure] == total, figure
    fold_bn = section["changes"][0]
    assert fold_bn["mac_after"] > 0 and section["changes"][4]["mac_before"] > 0  # the folded layer is priced


@pytest.mark.build
def test_the_report_prices_each_change_of_a_chain_in_the_graph_it_rewrote(tmp_path):
    report = models.build_report(tmp_path, folded_siblings(), "max_batch: 2\n")
    changes = report["passes"]["changes"]
    assert [c["pass_name"] for c in changes] == ["fold-batchnorm"] * 2 + ["fold-bias"] * 2 + ["merge-siblings"]
    bn, add = (next(n for n in report["cost"]["nodes"] if n["name"] == name)["flops"] for name in ("bna", "adda"))
    assert [c["flops_before"] - c["flops_after"] for c in changes] == [bn, bn, add, add, 0]
    markdown = (tmp_path / "build" / "spec.report.md").read_text()
    assert "| merge-siblings |" in markdown

import json

import numpy as np
from onnx import helper, numpy_helper

from tests import models
from tests.cli.test_build_cli import run
from tests.passes.helpers import model as make_model


def test_inspect_prints_costs_and_totals(demo_copy):
    model = demo_copy.parent.parent / "models" / "demo.onnx"
    result = run("inspect", model, "--shape", "images=1x3x64x64", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    head = next(n for n in data["nodes"] if n["name"] == "head0")
    assert head["flops"] == 32 * 16 * 16 * 18  # 1x1 conv: c1 * h * w * c2
    assert head["bytes_read"] + head["bytes_written"] == 4 * (16 * 16 * 32 + 32 * 18 + 18 + 16 * 16 * 18)
    assert data["totals"]["flops"] == sum(n["flops"] for n in data["nodes"])
    table = run("inspect", model, "--shape", "images=1x3x64x64", "--top", "3")
    assert table.exit_code == 0 and "res.a.conv" in table.stderr and "20 nodes at images=1x3x64x64" in table.stderr


def test_inspect_errors(demo_copy, tmp_path):
    model = demo_copy.parent.parent / "models" / "demo.onnx"
    cases = [
        ((model,), "error: input images[batch,3,64,64] float32: dimension 0 is dynamic; give it with --shape images=1x3x64x64\n"),
        ((model, "--shape", "image=1x3x64x64"), "error: --shape image: the model has no input of that name; did you mean 'images'?\n"),
        ((model, "--shape", "images=1x3x32x32"), "error: --shape images=1x3x32x32: does not fit the model's input images[batch,3,64,64] float32\n"),
        ((model, "--shape", "images=1x3x64x64", "--shape", "images=2x3x64x64"), "error: --shape images: given twice; give each input once\n"),
        ((model, "--shape", "images:1x3"), "error: --shape expects NAME=DxDxD, e.g. images=1x3x224x224; got 'images:1x3'\n"),
        ((tmp_path / "none.onnx",), f"error: model not found: {tmp_path / 'none.onnx'}\n"),
    ]
    for args, message in cases:
        result = run("inspect", *args)
        assert (result.exit_code, result.stderr) == (2, message)


def test_inspect_marks_unknown_costs(tmp_path):
    path = models.save(make_model([helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk"),
                              helper.make_node("Relu", ["values"], ["r"], name="relu")], {"x": [4, 10]}, ["r"],
                             [numpy_helper.from_array(np.array([3], np.int64), "k")]), tmp_path / "topk.onnx")
    result = run("inspect", path)
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stderr.splitlines() if line.startswith("topk"))
    assert row.split()[2:] == ["?", "312", "B", "no", "FLOP", "formula", "for", "TopK"]  # 4x10 + k read, values + int64 indices written
    assert "warning: 1 node(s) of unknown cost (shape or FLOP formula); their FLOPs count as 0: topk" in result.stderr

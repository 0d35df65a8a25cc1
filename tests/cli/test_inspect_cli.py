import json

import numpy as np
import pytest
from onnx import helper, numpy_helper

from tests import models
from tests.cli_runner import run
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
        (
            (model, "--shape", "image=1x3x64x64"),
            "error: --shape image: the model has no input of that name; did you mean 'images'?\n",
        ),
        (
            (model, "--shape", "images=1x3x32x32"),
            "error: --shape images=1x3x32x32: does not fit the model's input images[batch,3,64,64] float32\n",
        ),
        (
            (model, "--shape", "images=1x3x64x64", "--shape", "images=2x3x64x64"),
            "error: --shape images: given twice; give each input once\n",
        ),
        (
            (model, "--shape", "images:1x3"),
            "error: --shape expects NAME=DxDxD, e.g. images=1x3x224x224; got 'images:1x3'\n",
        ),
        ((tmp_path / "none.onnx",), f"error: model not found: {tmp_path / 'none.onnx'}\n"),
    ]
    for args, message in cases:
        result = run("inspect", *args)
        assert (result.exit_code, result.stderr) == (2, message)


def test_inspect_marks_unknown_costs(tmp_path):
    path = models.save(
        make_model(
            [
                helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk"),
                helper.make_node("Relu", ["values"], ["r"], name="relu"),
            ],
            {"x": [4, 10]},
            ["r"],
            [numpy_helper.from_array(np.array([3], np.int64), "k")],
        ),
        tmp_path / "topk.onnx",
    )
    result = run("inspect", path)
    assert result.exit_code == 0, result.stderr
    row = next(line for line in result.stderr.splitlines() if line.startswith("topk"))
    assert row.split()[2:] == [
        "?",
        "312",
        "B",
        "no",
        "FLOP",
        "formula",
        "for",
        "TopK",
    ]  # 4x10 + k read, values + int64 indices written
    assert "warning: 1 node(s) of unknown cost (shape or FLOP formula); their FLOPs count as 0: topk" in result.stderr


def test_without_shape_dynamic_dimensions_give_formulas_that_agree_with_every_concrete_shape(demo_copy):
    model = demo_copy.parent.parent / "models" / "demo.onnx"
    symbolic = run("inspect", model, "--json")
    assert symbolic.exit_code == 0, symbolic.stderr
    formulas = {n["name"]: n for n in json.loads(symbolic.stdout)["nodes"]}
    assert formulas["head0"]["flops"] == f"{32 * 16 * 16 * 18}*batch"
    for batch in (1, 3, 32):
        concrete = json.loads(run("inspect", model, "--shape", f"images={batch}x3x64x64", "--json").stdout)
        for node in concrete["nodes"]:
            formula = formulas[node["name"]]["flops"]
            value = int(formula.replace("*batch", "")) * batch if isinstance(formula, str) else formula
            assert value == node["flops"], node["name"]
    table = run("inspect", model, "--top", "2")
    assert "6.92 MFLOP·batch" in table.stderr and "batch: dynamic, costs are formulas in them" in table.stderr


def test_a_dimension_the_formulas_cannot_follow_is_unknown_not_guessed(tmp_path):
    """A stride-2 convolution on a dynamic height: its output height is floor((H - 1) / 2) + 1,
    which no polynomial states; inference leaves it unnamed, so the cost is unknown."""
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    path = models.save(
        make_model(
            [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[2, 2], pads=[1, 1, 1, 1])],
            {"x": [1, 3, "H", 32]},
            ["y"],
            [weight],
        ),
        tmp_path / "conv.onnx",
    )
    result = run("inspect", path)
    assert result.exit_code == 0, result.stderr
    assert next(line for line in result.stderr.splitlines() if line.startswith("conv")).split()[2] == "?"


@pytest.mark.build
def test_a_file_that_is_not_an_onnx_model_is_named_for_what_it_is(demo_copy):
    # The plan, the report and the spec sit beside the model: each is an easy wrong argument,
    # and "export it again" is the wrong advice for all three.
    assert run("build", demo_copy).exit_code == 0
    build = demo_copy.parent / "build"
    for path, what in (
        (build / "demo.plan", "a TensorRT plan"),
        (build / "demo.report.json", "a trtc build report"),
        (demo_copy, "YAML text (a trtc spec names its model under model:)"),
    ):
        result = run("inspect", path)
        assert (result.exit_code, result.stderr) == (
            2,
            f"error: model: {path} is {what}, not an ONNX model; give the .onnx file\n",
        )

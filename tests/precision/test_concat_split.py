"""A convolution reading a Concat of branches far apart in range is split per branch, so each
branch is quantized with its own scale: the FP32 function is unchanged, the quantized graph is
closer to FP32, close ranges and kept layers are left alone, and TensorRT builds every part in INT8."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.models import build_report
from tests.passes.helpers import outputs
from trtc.precision.calibrate import collect_ranges
from trtc.precision.concat_split import split_concat_readers
from trtc.precision.qdq import insert_qdq, plan_quantization


def head(box_gain: float = 100.0) -> onnx.ModelProto:
    """x -> box conv (values ~box_gain, like pixel coordinates) and class conv (a few units) ->
    Concat -> 1x1 Conv that weighs both alike -> y."""
    rng = np.random.default_rng(0)
    box = (rng.standard_normal((4, 8, 3, 3)) * 0.3 * box_gain).astype(np.float32)
    cls = (rng.standard_normal((6, 8, 3, 3)) * 0.3).astype(np.float32)
    fuse = (rng.standard_normal((5, 10, 1, 1)) * 0.3).astype(np.float32)
    fuse[:, :4] /= box_gain
    bias = rng.standard_normal(5).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "wb"], ["box"], name="box", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x", "wc"], ["cls"], name="cls", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["box", "cls"], ["both"], name="concat", axis=1),
        helper.make_node("Conv", ["both", "wf", "bf"], ["y"], name="fuse"),
    ]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, n) for w, n in ((box, "wb"), (cls, "wc"), (fuse, "wf"), (bias, "bf"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def feeds(seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((8, 8, 10, 10)).astype(np.float32)}


def quantized(model: onnx.ModelProto) -> onnx.ModelProto:
    plan = plan_quantization(model)
    ranges, _, _, _ = collect_ranges(model, plan.activations, [feeds(1), feeds(2)], "minmax")
    return insert_qdq(model, plan, ranges, "int8")


def relative_error(model, candidate, feed) -> float:
    expected, actual = outputs(model, feed)[0], outputs(candidate, feed)[0]
    return float(np.linalg.norm(expected - actual) / np.linalg.norm(expected))


def test_the_split_computes_the_same_and_quantizes_each_branch_with_its_own_scale():
    model = head()
    split, section = split_concat_readers(model, [feeds(1)])
    assert section["fuse"]["parts"] == ["fuse/branch0", "fuse/branch1"] and section["fuse"]["branches"] == [
        "box",
        "cls",
    ]
    assert "concat" not in [n.name for n in split.graph.node]  # only the split convolution read it
    np.testing.assert_allclose(outputs(split, feeds(3))[0], outputs(model, feeds(3))[0], rtol=1e-4, atol=1e-3)
    plan = plan_quantization(split)
    assert {"box", "cls"} <= set(plan.activations) and "both" not in plan.activations
    shared, per_branch = (
        relative_error(model, quantized(model), feeds(3)),
        relative_error(model, quantized(split), feeds(3)),
    )
    assert shared > 0.1 and per_branch < 0.3 * shared


def test_branches_of_close_ranges_and_kept_layers_are_not_split():
    assert split_concat_readers(head(box_gain=2.0), [feeds(1)])[1] == {}
    assert split_concat_readers(head(), [feeds(1)], keep_fp32=("fuse",))[1] == {}


@pytest.mark.build
def test_tensorrt_builds_every_part_of_a_split_convolution_in_int8(tmp_path):
    (tmp_path / "calib").mkdir()
    for seed in range(4):
        np.save(tmp_path / "calib" / f"batch{seed}.npy", feeds(seed)["x"])
    report = build_report(tmp_path, head(), "max_batch: 8\nprecision: {mode: int8, calibration: {data: calib}}\n")
    assert report["calibration"]["split_concat_readers"]["fuse"]["parts"] == ["fuse/branch0", "fuse/branch1"]
    assert (
        "| `fuse` | split into 2 convolutions, one per Concat branch (branch ranges "
        in (tmp_path / "build" / "spec.report.md").read_text()
    )
    # Each part is an Int8 convolution on its own branch's Q/DQ; the fusion map names the user's nodes.
    kernels = [(k["type"], k["precision"], k["onnx_nodes"]) for k in report["fusion"]["kernels"]]
    for branch in ("box", "cls"):
        assert any(
            kind == "correlation" and precision == "Int8" and {"fuse", "concat", f"{branch}/dequantize"} <= set(nodes)
            for kind, precision, nodes in kernels
        ), kernels
    assert report["fusion"]["folded_nodes"] == report["fusion"]["unnamed_nodes"] == []


@pytest.mark.build
def test_the_split_does_not_depend_on_the_calibration_batch(tmp_path):
    """The first sample has branches close in range, the later ones far apart: the decision is
    taken on a count of samples, so a batch of 1 and a batch of 8 split alike."""
    model = head(box_gain=4.0)
    box, cls = (numpy_helper.to_array(w).copy() for w in model.graph.initializer[:2])
    box[:, 4:], cls[:, :4] = 0.0, 0.0  # the box branch reads channels 0-3, the class branch 4-7
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(box, "wb"))
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(cls, "wc"))
    (tmp_path / "calib").mkdir()
    for index in range(16):
        sample = feeds(index)["x"][:1]
        sample[:, :4] *= 1.0 if index == 0 else 8.0
        np.save(tmp_path / "calib" / f"sample{index:02}.npy", sample)
    splits = []
    for batch in (1, 8):
        spec = f"max_batch: 8\nprecision: {{mode: int8, calibration: {{data: calib, batch: {batch}}}}}\n"
        splits.append(build_report(tmp_path, model, spec, "--force")["calibration"]["split_concat_readers"])
    assert splits[0].keys() == splits[1].keys() == {"fuse"}

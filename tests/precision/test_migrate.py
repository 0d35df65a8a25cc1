"""Range migration (SmoothQuant-style) into dense layers' weights: the FP32 function is unchanged,
quiet input channels of a dense Conv or MatMul keep more precision, an input that gains nothing is
left alone, and TensorRT still builds INT8 kernels."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.models import build_report
from tests.passes.helpers import outputs
from trtc.precision.calibrate import collect_ranges
from trtc.precision.equalize import layer_weight_scaled
from trtc.precision.migrate import MIGRATION_SAMPLES, choose_strengths, migration_inputs
from trtc.precision.qdq import insert_qdq, plan_quantization

CHANNELS = 16


def _model(nodes, x_shape, y_name, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "migrate",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(y_name, TensorProto.FLOAT, None)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def conv_then_dense_conv(loudness: np.ndarray) -> onnx.ModelProto:
    """x -> 1x1 Conv (channel c scaled by loudness[c]) -> Relu -> dense 3x3 Conv -> y."""
    rng = np.random.default_rng(0)
    first = (rng.standard_normal((CHANNELS, 8, 1, 1)) * 0.3 * loudness[:, None, None, None]).astype(np.float32)
    # The dense layer weighs quiet channels up (a trained layer reads every channel it has).
    dense = (rng.standard_normal((CHANNELS, CHANNELS, 3, 3)) * 0.3 / loudness[None, :, None, None]).astype(np.float32)
    return _model(
        [
            helper.make_node("Conv", ["x", "w1"], ["p"], name="first"),
            helper.make_node("Relu", ["p"], ["r"], name="relu"),
            helper.make_node("Conv", ["r", "w2"], ["y"], name="dense", pads=[1, 1, 1, 1]),
        ],
        ["N", 8, 12, 12],
        "y",
        [numpy_helper.from_array(first, "w1"), numpy_helper.from_array(dense, "w2")],
    )


def matmul_on_tokens() -> onnx.ModelProto:
    """x[N, tokens, 8] -> MatMul (feature f scaled by 2^(f/2)) -> Relu -> MatMul 16x16 -> y: features on the last axis."""
    rng = np.random.default_rng(0)
    loudness = 2.0 ** (np.arange(CHANNELS) / 2)
    first = (rng.standard_normal((8, CHANNELS)) * 0.3 * loudness[None, :]).astype(np.float32)
    second = (rng.standard_normal((CHANNELS, CHANNELS)) * 0.3 / loudness[:, None]).astype(np.float32)
    return _model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["p"], name="first"),
            helper.make_node("Relu", ["p"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["y"], name="dense"),
        ],
        ["N", 6, 8],
        "y",
        [numpy_helper.from_array(first, "w1"), numpy_helper.from_array(second, "w2")],
    )


def calibration(shape, seed=1):
    rng = np.random.default_rng(seed)
    return [
        {"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(3)
    ]  # 24 samples: 8 to search, 16 for ranges


def quantized(model, batches, migrate: bool):
    plan = plan_quantization(model)
    candidates = migration_inputs(model, plan.layers, plan.residuals, plan.activations) if migrate else {}
    ranges, _, channel_ranges, unseen = collect_ranges(
        model, plan.activations, batches, "minmax", channel_tensors=candidates, held_back=MIGRATION_SAMPLES
    )
    strengths = choose_strengths(model, candidates, plan.layers, ranges, lambda: iter(batches), unseen, 0.0)
    return insert_qdq(
        model, plan, ranges, "int8", channel_ranges={t: channel_ranges[t] for t in strengths}, strengths=strengths
    ), strengths


def relative_error(model, candidate, feeds) -> float:
    expected, actual = outputs(model, feeds)[0], outputs(candidate, feeds)[0]
    return float(np.linalg.norm(expected - actual) / np.linalg.norm(expected))


@pytest.mark.parametrize(
    "make, shape",
    [(lambda: conv_then_dense_conv(2.0 ** (np.arange(CHANNELS) / 2)), (8, 8, 12, 12)), (matmul_on_tokens, (8, 6, 8))],
    ids=["conv", "matmul"],
)
def test_migration_brings_a_dense_layer_with_quiet_input_channels_closer_to_fp32(make, shape):
    model = make()
    batches = calibration(shape)
    held_out = {"x": np.random.default_rng(9).standard_normal(shape).astype(np.float32)}
    plain, _ = quantized(model, batches, migrate=False)
    migrated, strengths = quantized(model, batches, migrate=True)
    assert "r" in strengths
    assert relative_error(model, migrated, held_out) < 0.7 * relative_error(model, plain, held_out)


def test_an_input_whose_channels_share_one_range_is_not_migrated():
    model = conv_then_dense_conv(np.ones(CHANNELS))
    plan = plan_quantization(model)
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(3):
        x = rng.uniform(-1, 1, (8, 8, 12, 12)).astype(np.float32)
        x[:, :, 0, 0] = 1.0  # every channel reaches the tensor's range
        batches.append({"x": x})
    candidates = migration_inputs(model, plan.layers, plan.residuals, plan.activations)
    assert candidates == {"x": 1, "r": 1}
    ranges, _, _, unseen = collect_ranges(
        model, plan.activations, batches, "minmax", channel_tensors=candidates, held_back=MIGRATION_SAMPLES
    )
    assert choose_strengths(model, {"x": 1}, plan.layers, ranges, lambda: iter(batches), unseen, 0.0) == {}


def test_no_samples_beyond_the_search_samples_means_no_migration():
    """The strength is judged on samples whose ranges it did not see; with none left, nothing moves."""
    model = conv_then_dense_conv(2.0 ** (np.arange(CHANNELS) / 2))
    plan = plan_quantization(model)
    batches = calibration((8, 8, 12, 12))[:1]
    ranges, _, _, unseen = collect_ranges(
        model, plan.activations, batches, "minmax", channel_tensors={"r": 1}, held_back=MIGRATION_SAMPLES
    )
    assert unseen == {}
    assert choose_strengths(model, {"r": 1}, plan.layers, ranges, lambda: iter(batches), unseen, 0.0) == {}


def test_calibration_gathers_the_channel_ranges_the_search_judges_on():
    """One pass over the calibration samples gives the channel ranges over all of them and over
    those after the search's first MIGRATION_SAMPLES; cutting the batch that spans them changes
    no range. The search then runs the model on its own samples only (it made a pass of its own
    over the rest)."""
    model = conv_then_dense_conv(2.0 ** (np.arange(CHANNELS) / 2))
    plan = plan_quantization(model)
    candidates = migration_inputs(model, plan.layers, plan.residuals, plan.activations)
    data = np.concatenate([batch["x"] for batch in calibration((8, 8, 12, 12))])
    batches = [{"x": data[start : start + 6]} for start in range(0, len(data), 6)]  # 6 + 2 | 4 + 6 + ...
    plain = collect_ranges(model, plan.activations, batches, "entropy", channel_tensors=candidates)
    held = collect_ranges(
        model, plan.activations, batches, "entropy", channel_tensors=candidates, held_back=MIGRATION_SAMPLES
    )
    assert held.ranges == plain.ranges and held.channel_ranges == plain.channel_ranges
    assert held.samples == plain.samples == len(data) and plain.channel_ranges_after == plain.channel_ranges
    later = collect_ranges(
        model, plan.activations, [{"x": data[MIGRATION_SAMPLES:]}], "minmax", channel_tensors=candidates
    )
    assert held.channel_ranges_after == later.channel_ranges

    read = []

    def reading():
        for feeds in batches:
            read.append(len(feeds["x"]))
            yield feeds

    strengths = choose_strengths(model, candidates, plan.layers, held.ranges, reading, held.channel_ranges_after, 0.0)
    assert "r" in strengths and sum(read) == 12  # the two batches holding the first 8 samples


@pytest.mark.parametrize(
    "op, attributes, weight_shape, axis",
    [
        ("Conv", {}, (4, CHANNELS, 3, 3), 1),
        ("Gemm", {"transB": 1}, (4, CHANNELS), 1),
        ("Gemm", {}, (CHANNELS, 4), 0),
        ("MatMul", {}, (CHANNELS, 4), 0),
    ],
)
def test_scaled_weights_take_back_the_input_division(op, attributes, weight_shape, axis):
    rng = np.random.default_rng(3)
    weight = rng.standard_normal(weight_shape).astype(np.float32)
    scales = rng.uniform(0.05, 1.0, CHANNELS).astype(np.float32)
    x = rng.standard_normal((2, CHANNELS, 5, 5) if op == "Conv" else (2, CHANNELS)).astype(np.float32)
    node = helper.make_node(op, ["x", "w"], ["y"], **attributes)

    def run(w, feed):
        return outputs(_model([node], list(feed.shape), "y", [numpy_helper.from_array(w, "w")]), {"x": feed})[0]

    divided = (x / scales.reshape([1, -1] + [1] * (x.ndim - 2))).astype(np.float32)
    np.testing.assert_allclose(
        run(layer_weight_scaled(node, weight, scales), divided), run(weight, x), rtol=1e-4, atol=1e-4
    )


@pytest.mark.build
def test_tensorrt_builds_the_migrated_dense_convolution_in_int8(tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    for index, batch in enumerate(calibration((8, 8, 12, 12))):
        np.save(calib / f"batch{index}.npy", batch["x"])
    report = build_report(
        tmp_path,
        conv_then_dense_conv(2.0 ** (np.arange(CHANNELS) / 2)),
        "max_batch: 8\nprecision: {mode: int8, calibration: {data: calib}}\n",
    )
    section = report["calibration"]["migrated_inputs"]
    assert (
        section["dense"]["input"] == "r" and section["dense"]["strength"] > 0 and section["dense"]["largest_boost"] > 2
    )
    # The Markdown and HTML reports list the step on its layer, as the JSON does.
    markdown = (tmp_path / "build" / "spec.report.md").read_text()
    assert (
        f"| `dense` | range migration at strength {section['dense']['strength']:g}: quiet channels lifted" in markdown
    )
    assert "range migration at strength" in (tmp_path / "build" / "spec.report.html").read_text()
    kernels = [(k["onnx_nodes"], k["precision"]) for k in report["fusion"]["kernels"]]
    assert any("dense" in nodes and "r/dequantize" in nodes and precision == "Int8" for nodes, precision in kernels), (
        kernels
    )

"""auto_fallback and the sensitivity ranking: layers are ranked on calibration samples, never on
the samples accuracy is reported on; the fallback keeps as many FLOPs quantized as the gate
allows; the figures printed and reported are those of the final graph; a failed gate still
writes the report. Real onnxruntime runs and TensorRT-RTX builds of two-layer models."""

import json
import re

import numpy as np
import pytest
from onnx import helper, numpy_helper

from tests import models
from tests.cli_runner import run
from tests.passes.helpers import model

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

TARGET = "target: {compute_capabilities: [8.9]}\n"


def report_of(folder):
    return json.loads((folder / "build" / "spec.report.json").read_text())


def concat_of(nodes, initializers):
    return model(
        [*nodes, helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=1)],
        {"x": ["N", 8, 16, 16]},
        ["y"],
        [numpy_helper.from_array(w, name) for name, w in initializers.items()],
    )


def halves():
    """y = [conv_a(x), conv_b(x)]: conv_a reads channels 0-3 only, conv_b channels 4-7 with larger
    weights. On data like the calibration data conv_b's quantization hurts more; on samples whose
    channels 0-3 exceed the calibrated range, conv_a's (its input is clipped)."""
    rng = np.random.default_rng(0)
    wa, wb = (
        (rng.standard_normal((8, 8, 1, 1)) * 0.3).astype(np.float32),
        (rng.standard_normal((8, 8, 1, 1)) * 0.6).astype(np.float32),
    )
    wa[:, 4:], wb[:, :4] = 0, 0
    return concat_of(
        [
            helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a"),
            helper.make_node("Conv", ["x", "wb"], ["b"], name="conv_b"),
        ],
        {"wa": wa, "wb": wb},
    )


def samples(folder, count, loud=lambda index: False, seed=0):
    """`count` one-sample .npy files; those `loud` picks have channels 0-3 four times larger."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for index in range(count):
        x = rng.standard_normal((1, 8, 16, 16)).astype(np.float32)
        if loud(index):
            x[:, :4] *= 4
        np.save(folder / f"sample{index:02d}.npy", x)


@pytest.mark.parametrize("accuracy_data", [False, True], ids=["held-out-calibration-samples", "accuracy-data"])
def test_layers_are_ranked_on_calibration_samples_never_on_the_accuracy_samples(tmp_path, accuracy_data):
    models.save(halves(), tmp_path / "model.onnx")
    if accuracy_data:  # the calibration data is quiet, accuracy.data loud
        samples(tmp_path / "calib", 16)
        samples(tmp_path / "acc", 8, loud=lambda index: True, seed=1)
    else:  # every 4th sample is held out for accuracy: those are the loud ones
        samples(tmp_path / "calib", 32, loud=lambda index: index % 4 == 3)
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nmax_batch: 4\nfusion: {disable: [merge-siblings]}\n"  # two layers to rank
        "precision: {mode: int8, auto_fallback: true, calibration: {data: calib, method: minmax, batch: 4}}\n"
        f"accuracy: {{min_cosine: 0.999{', data: acc' if accuracy_data else ''}}}\n" + TARGET,
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    fallback = report_of(tmp_path)["calibration"]["auto_fallback"]
    # Ranked on the quiet calibration samples: conv_b hurts more there (the loud accuracy samples
    # would rank conv_a first). The gate, judged on the accuracy samples, still needs conv_a back.
    assert [entry["layer"] for entry in fallback["ranking"]] == ["conv_b", "conv_a"]
    ranked_on = fallback["ranked_on"]
    assert (ranked_on["samples"], ranked_on["kind"]) == (8, "real")
    assert ranked_on["source"].startswith("the first 8 calibration samples")
    assert fallback["kept_back"] == ["conv_a"]


def big_and_small():
    """y = [conv_big(x), conv_small(x)]: a 3x3 convolution (9x the FLOPs) whose quantization
    alone hurts a little more than the 1x1 one's (55% vs 45% of the output's energy)."""
    rng = np.random.default_rng(0)
    big = (rng.standard_normal((8, 8, 3, 3)) * np.sqrt(0.55 / 72)).astype(np.float32)
    small = (rng.standard_normal((8, 8, 1, 1)) * np.sqrt(0.45 / 8)).astype(np.float32)
    return concat_of(
        [
            helper.make_node("Conv", ["x", "wbig"], ["a"], name="conv_big", pads=[1, 1, 1, 1]),
            helper.make_node("Conv", ["x", "wsmall"], ["b"], name="conv_small"),
        ],
        {"wbig": big, "wsmall": small},
    )


BIG_FLOPS, SMALL_FLOPS = 4 * 8 * 16 * 16 * 8 * 9, 4 * 8 * 16 * 16 * 8  # at the opt batch of 4
INT8 = "{mode: int8, calibration: {data: random, samples: 16, method: minmax}}"
AUTO_FALLBACK = INT8.replace("int8,", "int8, auto_fallback: true,")


def build_big_and_small(folder, precision, accuracy=None, *args):
    """Build big_and_small() with `precision` and the `accuracy` block: the spec and the CLI result."""
    models.save(big_and_small(), folder / "model.onnx")
    spec = models.write_spec(
        folder,
        f"model: model.onnx\nmax_batch: 4\nprecision: {precision}\n"
        + (f"accuracy: {accuracy}\n" if accuracy else "")
        + TARGET,
    )
    return spec, run("build", spec, *args)


def test_auto_fallback_keeps_the_most_quantized_flops_the_gate_allows(tmp_path):
    # Quantized, both layers miss the gate (relative L2 ~0.011); either one back meets it
    # (~0.0084 with conv_big quantized, ~0.0069 with conv_small). Ranked by harm alone,
    # conv_big goes back and 1/10 of the FLOPs stay INT8; per FLOP, conv_small goes back and 9/10 stay.
    _, result = build_big_and_small(tmp_path, AUTO_FALLBACK, "{max_rel_l2: 0.01}")
    assert result.exit_code == 0, result.stderr
    report = report_of(tmp_path)
    fallback = report["calibration"]["auto_fallback"]
    assert fallback["ranking"][0]["layer"] == "conv_big"  # the most harmful alone: what a ranking by harm returns first
    assert fallback["kept_back"] == ["conv_small"] and report["calibration"]["quantized_layers"] == ["conv_big"]
    assert (fallback["quantized_flops"], fallback["quantizable_flops"]) == (BIG_FLOPS, BIG_FLOPS + SMALL_FLOPS)
    # The figures printed and reported are those of the graph that was built.
    worst = report["accuracy"]["outputs"][0]
    assert worst["rel_l2_error"] <= 0.01 and report["accuracy"]["passed"] is True
    assert (
        f"cosine {worst['cosine']:.6f}" in result.stderr
        and f"rel. L2 {worst['rel_l2_error']:.2e}; gates passed" in result.stderr
    )
    assert "auto_fallback kept back conv_small; 90% of the quantizable FLOPs stay int8" in result.stderr


def test_a_needless_fallback_is_put_back(tmp_path):
    # Per FLOP, conv_small goes back first, but the gate only holds once conv_big is back too;
    # then conv_small's return was not needed: it is quantized again.
    _, result = build_big_and_small(tmp_path, AUTO_FALLBACK, "{max_rel_l2: 0.0079}")
    assert result.exit_code == 0, result.stderr
    report = report_of(tmp_path)
    fallback = report["calibration"]["auto_fallback"]
    assert fallback["kept_back"] == ["conv_big"] and fallback["put_back"] == ["conv_small"]
    assert report["calibration"]["quantized_layers"] == ["conv_small"] and fallback["quantized_flops"] == SMALL_FLOPS
    assert report["accuracy"]["outputs"][0]["rel_l2_error"] <= 0.0079


def printed_error(text):
    return float(re.search(r"relative L2 error (\S+) > accuracy\.max_rel_l2", text).group(1))


def test_a_failed_auto_fallback_prints_and_reports_the_figure_after_falling_back(tmp_path):
    _, measured = build_big_and_small(tmp_path, INT8)  # no gate: the full INT8 figure
    assert measured.exit_code == 0, measured.stderr
    all_int8 = report_of(tmp_path)["accuracy"]["outputs"][0]["rel_l2_error"]
    # FP16 rounding alone misses this gate: every layer goes back and the gate still fails.
    _, failed = build_big_and_small(tmp_path, AUTO_FALLBACK, "{max_rel_l2: 0.0001}")
    assert failed.exit_code == 3, failed.stderr
    assert "auto_fallback returned 2 layer(s) to fp16 and the gate still fails" in failed.stderr
    report = report_of(tmp_path)
    final = report["accuracy"]["outputs"][0]["rel_l2_error"]
    assert report["calibration"]["quantized_layers"] == [] and report["accuracy"]["passed"] is False
    assert printed_error(failed.stderr) == float(f"{final:.3g}") and final < all_int8 / 5


def test_a_failed_gate_writes_the_report_with_the_ranking_and_no_plan(tmp_path):
    _, built = build_big_and_small(tmp_path, INT8)
    assert built.exit_code == 0, built.stderr
    plan = tmp_path / "build" / "spec.plan"
    old_plan = (plan.read_bytes(), plan.stat().st_mtime_ns)
    others = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "build").iterdir() if path.suffix != ".json"}

    _, failed = build_big_and_small(tmp_path, INT8, "{min_cosine: 0.99999}", "--json")
    assert failed.exit_code == 3
    report = report_of(tmp_path)
    assert report["build"]["status"] == "failed" and report["build"]["plan"] is None
    assert report["accuracy"]["passed"] is False and report["accuracy"]["gates"] == {"min_cosine": 0.99999}
    ranking = report["calibration"]["sensitivity"]["ranking"]
    assert [entry["layer"] for entry in ranking] == ["conv_big", "conv_small"]
    assert (
        f"report with the accuracy figures and the layer ranking: {tmp_path / 'build' / 'spec.report.json'}"
        in failed.stderr
    )
    assert json.loads(failed.stdout)["exit_code"] == 3
    # No plan-side output: the old plan and the other outputs are untouched, but no longer look up to date.
    assert (plan.read_bytes(), plan.stat().st_mtime_ns) == old_plan
    assert {
        path.name: path.stat().st_mtime_ns for path in (tmp_path / "build").iterdir() if path.suffix != ".json"
    } == others
    _, rebuilt = build_big_and_small(tmp_path, INT8)  # the spec of the old plan again
    assert rebuilt.exit_code == 0, rebuilt.stderr
    assert "building spec (the last build failed its accuracy gate)" in rebuilt.stderr
    assert report_of(tmp_path)["build"]["plan"] == "build/spec.plan"


def test_a_failed_gate_without_a_previous_build_writes_only_the_report(tmp_path):
    spec, failed = build_big_and_small(tmp_path, "fp16", "{min_cosine: 0.9999999999}")
    assert failed.exit_code == 3, failed.stderr
    assert sorted(path.name for path in (tmp_path / "build").iterdir()) == ["spec.report.json"]
    assert report_of(tmp_path)["accuracy"]["passed"] is False
    again = run("build", spec)
    assert again.exit_code == 3 and "up to date" not in again.stderr


def test_a_failed_gate_whose_report_cannot_be_written_still_exits_3(tmp_path):
    (tmp_path / "blocked").write_text("a file where the report's folder would be")
    _, failed = build_big_and_small(
        tmp_path,
        "fp16",
        "{min_cosine: 0.9999999999}",
        "--set",
        f"output.report={tmp_path / 'blocked' / 'spec.report.json'}",
    )
    assert failed.exit_code == 3, failed.stderr
    assert "  report not written: output: cannot write " in failed.stderr

"""The calibration cache and the build fingerprint cover every input that changes the ranges, and a
cache file is checked before its ranges are used: stale or broken caches recalibrate with a
warning that names the file and the problem, never an internal error, never silently reused."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from tests import models
from trtc.cli import main
from trtc.precision import calibrate

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

HEAD = "model: model.onnx\nmax_batch: 4\ntarget: {compute_capabilities: [8.9]}\n"


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def report_of(folder):
    return json.loads((folder / "build" / "spec.report.json").read_text())


def generator_source(scale):
    return (
        "import numpy as np\n\ndef make():\n    rng = np.random.default_rng(0)\n    for _ in range(8):\n"
        f"        yield {{'x': (rng.standard_normal((1, 3, 16, 16)) * {scale}).astype(np.float32)}}\n"
    )


def int8_spec(folder, data, extra=""):
    models.save(models.conv_bn_relu(), folder / "model.onnx")
    return models.write_spec(
        folder,
        HEAD + f"precision: {{mode: int8, calibration: {{data: '{data}', samples: 8, batch: 4, "
        f"cache: build/calib.json{extra}}}}}\n",
    )


def test_an_edited_generator_module_recalibrates_with_its_new_data(tmp_path):
    (tmp_path / "keys_scaled_gen.py").write_text(generator_source(1))
    spec = int8_spec(tmp_path, "python:keys_scaled_gen:make")
    first = run("build", spec)
    assert first.exit_code == 0, first.stderr
    before = report_of(tmp_path)["calibration"]
    assert before["cache"] == "written"
    (tmp_path / "keys_scaled_gen.py").write_text(generator_source(100))  # same name, data x100
    second = run("build", spec)
    assert second.exit_code == 0, second.stderr
    after = report_of(tmp_path)["calibration"]
    assert after["cache"] == "written" and "was made for another data fingerprint" in second.stderr
    assert after["ranges"]["x"] == pytest.approx(100 * before["ranges"]["x"], rel=1e-3)


def test_editing_a_module_inside_a_package_rebuilds_and_says_why(tmp_path):
    package = tmp_path / "keys_calib_pkg"
    package.mkdir()
    # Running the package's code to fingerprint it would show up in this file.
    (package / "__init__.py").write_text(
        "from pathlib import Path\n"
        "with open(Path(__file__).parent.parent / 'ran.txt', 'a') as f:\n    f.write('ran\\n')\n"
    )
    (package / "scale.py").write_text("SCALE = 1\n")
    (package / "gen.py").write_text(
        generator_source("SCALE").replace("import numpy as np\n", "import numpy as np\nfrom .scale import SCALE\n")
    )
    spec = int8_spec(tmp_path, "python:keys_calib_pkg.gen:make")
    dep = tmp_path / "out" / "spec.d"

    def build(*args):
        result = run("build", spec, "--json", *args)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["builds"][0]["reason"], report_of(tmp_path)["calibration"]["ranges"]["x"]

    _, first_range = build("--depfile", dep)
    assert {"gen.py", "scale.py", "__init__.py"} <= {
        p.strip(" \\").rsplit("/", 1)[-1] for p in dep.read_text().split("\n")
    }
    runs = (tmp_path / "ran.txt").read_text()
    assert (
        build() == ("up to date", first_range) and (tmp_path / "ran.txt").read_text() == runs
    )  # no-op: no user code ran
    (package / "gen.py").write_text((package / "gen.py").read_text() + "\n# edited\n")
    assert build()[0] == "the calibration data changed"
    (package / "scale.py").write_text("SCALE = 100\n")  # a sibling the generator imports
    reason, edited_range = build()
    assert reason == "the calibration data changed"
    assert edited_range == pytest.approx(100 * first_range, rel=1e-3)


def gain_model():
    """x -> Mul(gain) -> conv_bn_relu: a pinned `gain` changes the graph calibration runs on."""
    model = models.conv_bn_relu()
    graph = model.graph
    graph.node[0].input[0] = "scaled"
    graph.node.insert(0, helper.make_node("Mul", ["x", "gain"], ["scaled"], name="gain_mul"))
    graph.input.append(helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1]))
    return model


def test_every_calibration_setting_is_in_the_cache_key(tmp_path, monkeypatch):
    models.save(gain_model(), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        HEAD + "inputs: {gain: {value: 1.0}, x: {range: [-1, 1]}}\n"
        "precision: {mode: int8, calibration: {data: random, method: percentile, percentile: 99.9, "
        "samples: 8, batch: 4, cache: build/calib.json}}\n",
    )
    first = run("build", spec)
    assert first.exit_code == 0, first.stderr
    assert run("build", spec, "--force").exit_code == 0 and report_of(tmp_path)["calibration"]["cache"] == "hit"
    # One change at a time, each on top of the last: every one must miss the cache and say why.
    steps = [
        (["precision.calibration.samples=12"], "sample count"),
        (["precision.calibration.batch=2"], "batch"),
        (["precision.calibration.preprocess={scale: 127.5}"], "preprocess"),
        (["precision.calibration.percentile=99.5"], "percentile"),
        (["inputs.gain.value=100.0"], "graph"),
        (["inputs.x.range=[-2, 2]"], "pinned values or value ranges"),
        (["fusion.passes=none"], "graph"),
    ]
    overrides: list[str] = []
    for changed, named in steps:
        overrides += ["--set", *changed]
        result = run("build", spec, *overrides)
        assert result.exit_code == 0, result.stderr
        assert report_of(tmp_path)["calibration"]["cache"] == "written", changed
        stale = next(line for line in result.stderr.splitlines() if "precision.calibration.cache: stale" in line)
        assert f"was made for another {named}" in stale, (changed, stale)
    monkeypatch.setattr(calibrate, "__version__", "999.0")
    result = run("build", spec, *overrides, "--force")
    assert result.exit_code == 0 and "was made for another trtc version" in result.stderr


def _set_range(value):
    def corrupt(document):
        document["ranges"]["x"] = value

    return corrupt


BAD_CACHES = [
    ("broken JSON", lambda text: text[:-8], "not valid JSON ("),
    ("NaN", _set_range(math.nan), "the range of 'x' is nan, not a finite number"),
    ("infinite", _set_range(math.inf), "the range of 'x' is inf, not a finite number"),
    ("too large", _set_range(10**400), "not a finite number"),
    ("negative", _set_range(-2.5), "the range of 'x' is negative (-2.5)"),
    ("string", _set_range("3.9"), "the range of 'x' is '3.9', not a number"),
    ("boolean", _set_range(True), "the range of 'x' is True, not a number"),
    (
        "unknown tensor",
        lambda doc: doc["ranges"].update(no_such_tensor=1.0),
        "'no_such_tensor' is not a tensor of the graph",
    ),
    (
        "ranges not a mapping",
        lambda doc: doc.update(ranges=[1.0, 2.0]),
        "'ranges' is not a mapping of tensor names to numbers",
    ),
    (
        "samples not a count",
        lambda doc: doc.update(samples="many"),
        "'samples' is not a sample count (0 to 64): 'many'",
    ),
    ("samples infinite", lambda doc: doc.update(samples=math.inf), "'samples' is not a sample count (0 to 64): inf"),
    ("not an object", lambda doc: "[1, 2]", "not a calibration cache (a JSON object with ranges)"),
    (
        "FP16 ranges not numbers",  # the FP16 fallback's largest |x| per tensor
        lambda doc: doc["largest_values"].update(y=math.nan),
        "its largest values are not tensor names with numbers of 0 or more",
    ),
    (
        "FP16 ranges not a mapping",
        lambda doc: doc.update(largest_values=[1.0]),
        "its largest values are not tensor names with numbers of 0 or more",
    ),
]


def _without_time(section: dict) -> dict:
    """A calibration section without its measured seconds, which no two runs share."""
    assert section["seconds"] >= 0
    return {key: value for key, value in section.items() if key != "seconds"}


def test_a_bad_cache_is_recalibrated_with_a_warning(tmp_path):
    (tmp_path / "calib").mkdir()
    rng = np.random.default_rng(5)
    for index in range(3):
        np.save(tmp_path / "calib" / f"{index}.npy", rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    spec = models.write_spec(
        tmp_path,
        HEAD + "precision: {mode: int8, calibration: {data: calib, samples: 64, batch: 4, cache: build/calib.json}}\n",
    )
    assert run("build", spec).exit_code == 0
    good = _without_time(report_of(tmp_path)["calibration"])
    assert good["samples"] == 6  # all the folder holds
    cache = tmp_path / "build" / "calib.json"
    valid = cache.read_text()
    hit = run("build", spec, "--force")
    assert hit.exit_code == 0 and _without_time(report_of(tmp_path)["calibration"]) == {
        **good,
        "cache": "hit",
    }  # the same samples count too
    for case, corrupt, problem in BAD_CACHES:
        if case == "broken JSON":
            cache.write_text(corrupt(valid))
        else:
            document = json.loads(valid)
            replaced = corrupt(document)
            cache.write_text(replaced if isinstance(replaced, str) else json.dumps(document))
        result = run("build", spec, "--force")
        assert result.exit_code == 0, (case, result.stderr)
        warning = next((line for line in result.stderr.splitlines() if "precision.calibration.cache" in line), "")
        assert warning.startswith(f"warning: precision.calibration.cache: ignored {cache}: ") and problem in warning, (
            case,
            warning,
        )
        assert warning.endswith("; calibrating again"), (case, warning)
        again = _without_time(report_of(tmp_path)["calibration"])
        assert again == {**good, "cache": "written"}, case
        assert json.loads(cache.read_text())["ranges"] == json.loads(valid)["ranges"], case

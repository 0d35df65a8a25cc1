"""`trtc init` writes starter specs that trtc's own loader accepts and that build as they are;
`trtc check` runs TensorRT's parser without building and lists every node it refuses."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import yaml
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from tests import models, trust_models
from trtc.cli import main
from trtc.spec import load_spec

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def _model(nodes, inputs, outputs, initializers=(), domains=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", models.OPSET)] + [helper.make_opsetid(d, 1) for d in domains]
    )
    model.ir_version = 8
    return model


def two_inputs_with_int32() -> onnx.ModelProto:
    """features[N,8] float and ids[N,4] int32 -> Concat -> MatMul -> scores[N,2]."""
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((12, 2)).astype(np.float32), "w")
    return _model(
        [
            helper.make_node("Cast", ["ids"], ["ids_f"], name="cast", to=TensorProto.FLOAT),
            helper.make_node("Concat", ["features", "ids_f"], ["joined"], name="concat", axis=1),
            helper.make_node("MatMul", ["joined", "w"], ["scores"], name="matmul"),
        ],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 8]),
            helper.make_tensor_value_info("ids", TensorProto.INT32, ["N", 4]),
        ],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        [weights],
    )


def shared_sequence_dim() -> onnx.ModelProto:
    """tokens[batch,seq] int32 and mask[batch,seq] float share the dynamic 'seq' -> masked sum."""
    return _model(
        [
            helper.make_node("Cast", ["tokens"], ["t"], name="cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", ["t", "mask"], ["masked"], name="mul"),
            helper.make_node("ReduceSum", ["masked"], ["total"], name="sum", keepdims=0),
        ],
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT32, ["batch", "seq"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [])],
    )


def with_op(op_type: str, domain: str = "") -> onnx.ModelProto:
    """x[2,4] -> Relu -> <op_type> -> Relu -> z: one node TensorRT is asked to import."""
    return _model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="pre"),
            helper.make_node(op_type, ["r"], ["y"], name="suspect", domain=domain),
            helper.make_node("Relu", ["y"], ["z"], name="post"),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        domains=[domain] if domain else [],
    )


def test_init_static_model_builds_as_written(tmp_path):
    models.save(models.conv_bn_relu(batch=1), tmp_path / "models" / "net.onnx")
    spec = tmp_path / "specs" / "net.yaml"
    result = run("init", tmp_path / "models" / "net.onnx", "-o", spec)
    assert result.exit_code == 0, result.stderr
    text = spec.read_text()
    assert "model: ../models/net.onnx" in text
    assert "\nmax_batch:" not in text and "# max_batch: 32" in text  # no dynamic batch: left as a comment
    assert (
        '#   - "y"' in text and "float32 [1, 4, 16, 16]" in text
    )  # outputs listed, commented; 'y' quoted (YAML 1.1 boolean)
    loaded = load_spec(spec)
    assert loaded.precision.mode == "fp32" and loaded.workspace == 2**30 and loaded.target.backend == "auto"
    assert loaded.output.plan == tmp_path / "specs" / "build" / "net.plan"
    built = run("build", spec)
    assert built.exit_code == 0, built.stderr
    assert (tmp_path / "specs" / "build" / "net.plan").stat().st_size > 0


def test_init_dynamic_batch_gets_max_batch_and_builds(tmp_path):
    model = models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    spec = tmp_path / "model.yaml"
    result = run("init", model, "-o", spec)
    assert result.exit_code == 0, result.stderr
    document = yaml.safe_load(spec.read_text())
    assert document["max_batch"] == 32 and "inputs" not in document
    assert "# x:" in spec.read_text() and "float32 [N, 3, 16, 16]" in spec.read_text()
    built = run("build", spec)
    assert built.exit_code == 0, built.stderr
    report = json.loads((tmp_path / "build" / "model.report.json").read_text())
    assert report["bindings"][0]["profiles"] == [
        {"min": [1, 3, 16, 16], "opt": [32, 3, 16, 16], "max": [32, 3, 16, 16]}
    ]


def test_init_two_inputs_one_int32_builds(tmp_path):
    model = models.save(two_inputs_with_int32(), tmp_path / "two.onnx")
    spec = tmp_path / "two.yaml"
    assert run("init", model, "-o", spec).exit_code == 0
    text = spec.read_text()
    assert "# features:" in text and "# ids:" in text and "int32 [N, 4]" in text
    assert "range: [0, 1]" in text  # the integer input is offered a value range
    built = run("build", spec)
    assert built.exit_code == 0, built.stderr
    report = json.loads((tmp_path / "build" / "two.report.json").read_text())
    assert {b["name"]: b["dtype"] for b in report["bindings"] if b["mode"] == "Input"} == {
        "features": "Float",
        "ids": "Int32",
    }


def test_init_proposes_one_range_for_a_shared_dynamic_dim(tmp_path):
    model = models.save(shared_sequence_dim(), tmp_path / "seq.onnx")
    spec = tmp_path / "seq.yaml"
    result = run("init", model, "-o", spec)
    assert result.exit_code == 0, result.stderr
    inputs = yaml.safe_load(spec.read_text())["inputs"]
    assert inputs["tokens"] == inputs["mask"] == {"min": [1, 1], "opt": [32, 128], "max": [32, 512]}
    assert "tokens dimension 1 ('seq'): proposed 1 .. 128 .. 512" in result.stderr
    checked = run("check", spec)
    assert checked.exit_code == 0, checked.stderr


def test_init_names_inputs_to_pin_and_a_batch_axis_that_is_not_first(tmp_path):
    model = models.save(trust_models.if_on_scalar_input_around_lstm(), tmp_path / "vad.onnx")
    result = run("init", model, "-o", "-")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "# hint: If 'choose_net' depends on input(s) sr; pin them" in text
    assert "  # sr:" in text and "int64 []: static" in text and "#   value: ...      # pin it" in text
    # The batch is dimension 1 here ([seq, batch, features]): max_batch covers it.
    assert yaml.safe_load(text)["max_batch"] == 32 and "inputs" not in yaml.safe_load(text)
    assert "# x:             # float32 [10, batch, 4]: dimension 1 from max_batch: 1 .. 32" in text
    assert "#   max: [10, 32, 4]" in text


def test_init_refuses_to_overwrite_without_force(tmp_path):
    model = models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    spec = tmp_path / "model.yaml"
    spec.write_text("model: model.onnx\n")
    result = run("init", model, "-o", spec)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {spec} already exists; pass --force to overwrite it, or -o to write elsewhere"
    ]
    assert spec.read_text() == "model: model.onnx\n"
    assert run("init", model, "-o", spec, "--force").exit_code == 0
    assert "max_batch: 32" in spec.read_text()


def test_init_default_path_and_stdout(tmp_path, monkeypatch):
    models.save(models.conv_bn_relu(), tmp_path / "m" / "net.onnx")
    monkeypatch.chdir(tmp_path)
    printed = run("init", "m/net.onnx", "-o", "-")
    assert printed.exit_code == 0 and "model: m/net.onnx" in printed.stdout
    assert not (tmp_path / "net.yaml").exists()
    assert run("init", "m/net.onnx").exit_code == 0
    assert load_spec(tmp_path / "net.yaml").model == tmp_path / "m" / "net.onnx"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a model at all\x00\xff", "is not a valid ONNX file"),
        (None, "model not found"),
    ],
)
def test_init_bad_model_is_one_line_exit_2(tmp_path, content, message):
    model = tmp_path / "model.onnx"
    if content is not None:
        model.write_bytes(content)
    result = run("init", model, "-o", tmp_path / "spec.yaml")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not (tmp_path / "spec.yaml").exists()


def test_check_supported_model_exits_0_without_building(model_dir):
    spec = models.write_spec(model_dir, "model: model.onnx\nmax_batch: 4\ntarget: {compute_capabilities: [8.9]}\n")
    result = run("check", spec)
    assert result.exit_code == 0, result.stderr
    assert "supported: spec: tensorrt-rtx" in result.stderr and "parsed all 4 ONNX nodes" in result.stderr
    assert (
        "optimization profile 0: accepted (min .. opt .. max: x 1x3x16x16 .. 4x3x16x16 .. 4x3x16x16)" in result.stderr
    )
    assert not (model_dir / "build").exists()


@pytest.mark.parametrize("op_type, domain", [("QuickGelu", "com.microsoft"), ("Det", "")])
def test_check_lists_each_node_the_parser_refuses(tmp_path, op_type, domain):
    models.save(with_op(op_type, domain), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\n")
    result = run("check", spec)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("unsupported: tensorrt-rtx") and "refused 1 node(s) of 3" in lines[0]
    assert (
        lines[1]
        == f"  node 'suspect' ({op_type}): TensorRT has no importer for {op_type} and no registered plugin has that name; load the library "
        "that provides it with plugins: [path/to/lib.so] in the spec, or export the model without this op"
    )
    assert any("export the float model" in line for line in lines[2:]) == (domain == "com.microsoft")


def test_check_lists_every_refused_node(tmp_path):
    models.save(models.with_unsupported_ops(), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 2\n")
    result = run("check", spec)
    assert result.exit_code == 1
    assert [line.split(":")[0].strip() for line in result.stderr.splitlines()[1:3]] == [
        "node 'frob1' (Frobnicate)",
        "node 'frob2' (Frobnicate)",
    ]


def test_check_selected_outputs_prune_the_unsupported_branch(tmp_path):
    models.save(models.with_unsupported_ops(), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 2\noutputs: [y]\n")
    result = run("check", spec)
    assert result.exit_code == 0, result.stderr
    assert "(2 pruned by the outputs)" in result.stderr


CHECK_SPEC_PROBLEMS = [  # tests/spec/test_preflight.py holds those the model does not decide to before the model loads
    ("outputs: [yy]\n", "outputs: tensor 'yy' is not in the model; did you mean 'y'?"),
    ("inputs: {images: {shape: [1, 3, 16, 16]}}\n", "inputs: 'images' is not an input of the model"),
    ("inputs: {x: {min: [1, 3, 8, 8], max: [4, 3, 8, 8]}}\n", "dimension 2 is fixed to 16 in the model"),
    ("precision: int8\n", "precision.calibration.data: int8 needs calibration data"),
    ("precision: {mode: int8, calibration: {data: calib/}}\n", "precision.calibration.data: folder not found"),
    ("fusion: {disable: [fold-batchnrom]}\n", "fusion.disable[0]: expected one of"),
]


@pytest.mark.parametrize("extra, message", CHECK_SPEC_PROBLEMS)
def test_check_spec_problems_exit_2_in_one_line(model_dir, extra, message):
    spec = models.write_spec(model_dir, "model: model.onnx\nmax_batch: 4\n" + extra)
    result = run("check", spec)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_check_reads_the_first_calibration_sample(model_dir):
    (model_dir / "calib").mkdir()
    np.save(model_dir / "calib" / "0.npy", np.zeros((1, 3, 8, 8), np.float32))
    spec = models.write_spec(
        model_dir, "model: model.onnx\nmax_batch: 4\nprecision: {mode: int8, calibration: {data: calib/}}\n"
    )
    result = run("check", spec)
    assert result.exit_code == 2
    assert "calib/0.npy: input 'x' has shape [1, 3, 8, 8]; the model wants x[N,3,16,16] float32" in result.stderr


def test_check_json_is_one_object_on_stdout(tmp_path, model_dir):
    models.save(with_op("Det"), tmp_path / "bad.onnx")
    bad = run("check", models.write_spec(tmp_path, "model: bad.onnx\n"), "--json")
    assert bad.exit_code == 1
    document = json.loads(bad.stdout)
    assert document["exit_code"] == 1 and document["supported"] is False
    assert document["unsupported"] == [
        {
            "node": "suspect",
            "op_type": "Det",
            "message": "TensorRT has no importer for Det and no registered plugin has that name; load the library that provides it with "
            "plugins: [path/to/lib.so] in the spec, or export the model without this op",
        }
    ]
    good = run("check", models.write_spec(model_dir, "model: model.onnx\nmax_batch: 2\n"), "--json")
    assert good.exit_code == 0
    document = json.loads(good.stdout)
    assert (
        document["supported"] is True and document["inputs"] == {"x": [-1, 3, 16, 16]} and document["outputs"] == ["y"]
    )
    assert document["profiles"] == [{"x": {"min": [1, 3, 16, 16], "opt": [2, 3, 16, 16], "max": [2, 3, 16, 16]}}]
    broken = run("check", models.write_spec(model_dir, "model: model.onnx\noutputs: [nope]\n", "broken.yaml"), "--json")
    assert broken.exit_code == 2 and json.loads(broken.stdout)["error"]["message"].startswith("outputs: tensor 'nope'")


def test_init_quotes_names_yaml_would_misread(tmp_path):
    """TensorFlow-style 'input:0', a space in the file name, an exporter's 'unk__12' batch."""
    model = _model(
        [helper.make_node("Relu", ["input:0"], ["out put"])],
        [helper.make_tensor_value_info("input:0", TensorProto.FLOAT, ["unk__12", 7])],
        [helper.make_tensor_value_info("out put", TensorProto.FLOAT, ["unk__12", 7])],
    )
    models.save(model, tmp_path / "odd model.onnx")
    result = run("init", tmp_path / "odd model.onnx", "-o", tmp_path / "odd model.yaml")
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "odd model.yaml").read_text()
    assert 'model: "odd model.onnx"' in text and '  # "input:0":' in text and '#   - "out put"' in text
    assert "trtc check 'odd model.yaml'" in text and "next: trtc check '" in result.stderr
    checked = run("check", tmp_path / "odd model.yaml", "--json")
    assert checked.exit_code == 0, checked.stderr
    assert json.loads(checked.stdout)["profiles"] == [{"input:0": {"min": [1, 7], "opt": [32, 7], "max": [32, 7]}}]

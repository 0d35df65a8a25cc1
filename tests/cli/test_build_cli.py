"""`trtc build` end to end in-process: real builds, exit codes, one-line errors, and the
guarantee that a failed build leaves the output folder as it was."""

from __future__ import annotations

import json

import pytest

from tests import models
from tests.cli_runner import run, snapshot

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


def test_demo_builds_plan_and_reports(demo_copy):
    result = run("build", demo_copy)
    assert result.exit_code == 0, result.stderr
    build_dir = demo_copy.parent / "build"
    assert sorted(p.name for p in build_dir.iterdir()) == [
        "demo.build.log",
        "demo.plan",
        "demo.report.html",
        "demo.report.json",
        "demo.report.md",
    ]
    report = json.loads((build_dir / "demo.report.json").read_text())
    assert report["schema"] == "trtc.report/1"
    assert report["build"]["backend"] == "tensorrt-rtx"
    assert report["build"]["plan_bytes"] == (build_dir / "demo.plan").stat().st_size
    kernels = report["fusion"]["kernels"]
    # What the builder log says for the demo: each Conv, its BatchNorm and ReLU share one kernel.
    for block in ("stem", "down", "res.a"):
        owners = [k for k in kernels if f"{block}.conv" in k["onnx_nodes"]]
        assert len(owners) == 1
        assert owners[0]["onnx_nodes"] == [f"{block}.conv", f"{block}.bn", f"{block}.relu"]
        assert owners[0]["onnx_op_types"] == ["Conv", "BatchNormalization", "Relu"]
    # With the BatchNorm folded by trtc, TensorRT fuses the residual Add into the convolution.
    residual = [k for k in kernels if "res.add" in k["onnx_nodes"]]
    assert len(residual) == 1 and set(residual[0]["onnx_nodes"]) == {"res.b.conv", "res.b.bn", "res.add", "res.relu"}
    assert residual[0]["type"] == "correlation"
    # The three parallel heads, merged by trtc, run as one convolution.
    heads = [k for k in kernels if k["type"] == "correlation" and "head0" in k["onnx_nodes"]]
    assert len(heads) == 1 and heads[0]["onnx_nodes"] == ["head0", "head1", "head2"]
    assert heads[0]["built_nodes"] == ["head0+head1+head2"]
    # the Flatten is a view of the input's data that TensorRT elided: it ran, no kernel names it
    assert report["fusion"]["folded_nodes"] == [] and report["fusion"]["unnamed_by_op_type"] == {"Flatten": 1}
    assert report["fusion"]["counts"]["onnx_nodes"] == 20
    assert report["passes"]["totals"]["changes"] == 5
    assert report["bindings"][0]["profiles"] == [
        {"min": [1, 3, 64, 64], "opt": [32, 3, 64, 64], "max": [32, 3, 64, 64]}
    ]
    markdown = (build_dir / "demo.report.md").read_text()
    assert "`stem.conv` (Conv), `stem.bn` (BatchNormalization), `stem.relu` (Relu) |" in markdown
    assert "20 ONNX nodes ->" in result.stderr


def test_demo_without_passes_shows_tensorrt_alone(demo_copy):
    result = run("build", demo_copy, "--set", "fusion.passes=none")
    assert result.exit_code == 0, result.stderr
    report = json.loads((demo_copy.parent / "build" / "demo.report.json").read_text())
    kernels = report["fusion"]["kernels"]
    # TensorRT alone fuses the second BatchNorm with the Add and ReLU, not into the convolution,
    # and runs the three heads as three convolutions.
    assert any(k["onnx_nodes"] == ["res.b.bn", "res.add", "res.relu"] for k in kernels)
    assert sorted(
        n for k in kernels if k["type"] == "correlation" for n in k["onnx_nodes"] if n.startswith("head")
    ) == ["head0", "head1", "head2"]
    assert len([k for k in kernels if k["type"] == "correlation" and k["onnx_nodes"][0].startswith("head")]) == 3
    assert report["passes"]["totals"]["changes"] == 0


def test_marked_outputs_prune_unused_branches(model_dir):
    spec = models.write_spec(
        model_dir, "model: model.onnx\nmax_batch: 4\noutputs: [r0]\ntarget: {compute_capabilities: [8.9]}\n"
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    report = json.loads((model_dir / "build" / "spec.report.json").read_text())
    assert report["graph"]["pruned_nodes"] == ["conv1"]
    assert [b["name"] for b in report["bindings"] if b["mode"] == "Output"] == ["r0"]


def test_unnamed_nodes_get_stable_names_in_the_report(tmp_path):
    models.save(models.conv_bn_relu(names=False), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    assert run("build", spec).exit_code == 0
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert report["graph"]["renamed_nodes"] == ["Conv_0", "BatchNormalization_1", "Relu_2", "Conv_3"]
    assert any(k["onnx_nodes"] == ["Conv_0", "BatchNormalization_1", "Relu_2"] for k in report["fusion"]["kernels"])


BAD_INPUTS = {
    "missing spec": (None, "missing.yaml", 2, "error: spec file not found: {dir}/missing.yaml (check the path)"),
    "spec does not parse": (
        "model: model.onnx\nmax_batch: [\n",
        "spec.yaml",
        2,
        "error: {dir}/spec.yaml:3:1: YAML does not parse",
    ),
    "unknown output tensor": (
        "model: model.onnx\nmax_batch: 2\noutputs: [r1]\n",
        "spec.yaml",
        2,
        "error: outputs: tensor 'r1' is not in the model; did you mean 'r0'?",
    ),
    "dynamic dim without range": (
        "model: model.onnx\n",
        "spec.yaml",
        2,
        "error: inputs.x: dimension 0 ('N') of x[N,3,16,16] float32 is dynamic and has no range; "
        "set max_batch, or add inputs: {x: {min: [...], opt: [...], max: [...]}}",
    ),
    "unknown input": (
        "model: model.onnx\nmax_batch: 2\ninputs: {images: {shape: [1,3,16,16]}}\n",
        "spec.yaml",
        2,
        "error: inputs: 'images' is not an input of the model; the model's inputs are: x",
    ),
    "fixed dim contradicted": (
        "model: model.onnx\ninputs: {x: {min: [1,3,8,8], max: [2,3,8,8]}}\n",
        "spec.yaml",
        2,
        "error: inputs.x.min: dimension 2 is fixed to 16 in the model (x[N,3,16,16] float32); got 8",
    ),
    "fixed dim contradicted by a fixed shape": (
        "model: model.onnx\ninputs: {x: {shape: [1,3,8,8]}}\n",
        "spec.yaml",
        2,
        "error: inputs.x.shape: dimension 2 is fixed to 16 in the model (x[N,3,16,16] float32); got 8",
    ),
    "backend not installed": (
        "model: model.onnx\nmax_batch: 2\ntarget: {backend: tensorrt}\n",
        "spec.yaml",
        1,
        "error: target.backend is 'tensorrt' but it does not import: `pip install tensorrt` or set target.backend: auto",
    ),
    "model is not onnx": (
        "model: notes.txt\nmax_batch: 2\n",
        "spec.yaml",
        2,
        "error: model: {dir}/notes.txt is not a valid ONNX file",
    ),
    "int8 without calibration data": (
        "model: model.onnx\nmax_batch: 2\nprecision: int8\n",
        "spec.yaml",
        2,
        "error: precision.calibration.data: int8 needs calibration data: a folder of .npy/.npz/images, "
        "python:module:function, or 'random' for a smoke test",
    ),
}


@pytest.mark.parametrize("spec_text,spec_name,code,message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_gives_one_line_exit_code_and_no_output(model_dir, spec_text, spec_name, code, message):
    (model_dir / "notes.txt").write_text("not a model")
    if spec_text is not None:
        (model_dir / spec_name).write_text(spec_text)
    before = snapshot(model_dir)
    result = run("build", model_dir / spec_name)
    assert result.exit_code == code
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message.replace("{dir}", str(model_dir))), result.stderr
    assert snapshot(model_dir) == before


def test_failed_build_leaves_the_output_folder_as_it_was(tmp_path):
    models.save(models.gemm_head(), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 4\ntarget: {compute_capabilities: [7.5]}\n")
    before = snapshot(tmp_path)
    result = run("build", spec, "--no-diagnose")
    assert result.exit_code == 1
    assert "\nerror: TensorRT (tensorrt-rtx " in result.stderr
    assert "failed to build the engine" in result.stderr
    assert "full builder log: " in result.stderr
    assert snapshot(tmp_path) == before  # no build/ folder, no plan, no report, no partial files


def test_unsupported_nodes_exit_1_and_list_each(tmp_path):
    models.save(models.with_unsupported_ops(), tmp_path / "model.onnx")
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 4\n")
    result = run("build", spec)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    lines = lines[[i for i, line in enumerate(lines) if line.startswith("error:")][0] :]
    assert lines[0].startswith("error: TensorRT's ONNX parser refused 2 node(s): node 'frob1' (Frobnicate)")
    assert lines[1].startswith("  node 'frob1' (Frobnicate): ") and lines[2].startswith("  node 'frob2' (Frobnicate): ")


def test_existing_outputs_survive_a_failed_rebuild(demo_copy):
    assert run("build", demo_copy).exit_code == 0
    plan = demo_copy.parent / "build" / "demo.plan"
    old = plan.read_bytes()
    result = run("build", demo_copy, "--set", "target.compute_capabilities=[7.5]")
    assert result.exit_code == 1
    assert plan.read_bytes() == old
    assert not list(plan.parent.glob("*.partial"))


def test_set_paths_resolve_against_the_working_directory(demo_copy, monkeypatch):
    monkeypatch.chdir(demo_copy.parent.parent)
    result = run("build", demo_copy, "--set", "output.plan=elsewhere.plan")
    assert result.exit_code == 0, result.stderr
    assert (demo_copy.parent.parent / "elsewhere.plan").is_file()


def test_unknown_flag_is_a_usage_error(demo_copy):
    result = run("build", demo_copy, "--frobnicate")
    assert result.exit_code == 2
    assert "No such option '--frobnicate'" in result.stderr


def test_schema_command_prints_json_schema():
    result = run("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "trtc build spec"


def test_saved_onnx_is_what_tensorrt_parsed(model_dir):
    import onnx

    spec = models.write_spec(
        model_dir,
        "model: model.onnx\nmax_batch: 2\noutput: {onnx: out/as_built.onnx}\n"
        "fusion: {passes: none}\ntarget: {compute_capabilities: [8.9]}\n",
    )
    assert run("build", spec).exit_code == 0
    assert (model_dir / "out" / "as_built.onnx").read_bytes() == (model_dir / "model.onnx").read_bytes()
    assert run("build", spec, "--set", "outputs=[r0]").exit_code == 0
    pruned = onnx.load(str(model_dir / "out" / "as_built.onnx"))
    assert [o.name for o in pruned.graph.output] == ["r0"]
    assert "conv1" not in {n.name for n in pruned.graph.node}


def test_run_says_it_needs_a_gpu(demo_copy):
    # No development or CI machine has a GPU: `trtc run` must say so and exit 1.
    assert run("build", demo_copy).exit_code == 0
    result = run("run", demo_copy.parent / "build" / "demo.plan")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: tensorrt-rtx cannot load the plan on this machine: it needs a GPU it supports"
    )


def test_run_bad_arguments_are_usage_errors(tmp_path):
    missing = run("run", tmp_path / "none.plan")
    assert missing.exit_code == 2
    assert (
        missing.stderr == f"error: plan not found: {tmp_path / 'none.plan'} (build one with `trtc build spec.yaml`)\n"
    )
    (tmp_path / "x.plan").write_bytes(b"plan")
    bad_input = run("run", tmp_path / "x.plan", "--input", "images")
    assert bad_input.exit_code == 2
    assert bad_input.stderr == "error: --input expects NAME=FILE.npy, got 'images'\n"


def test_external_data_and_several_profiles(tmp_path):
    import onnx

    model = models.conv_bn_relu()
    onnx.save(
        model,
        str(tmp_path / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    spec = models.write_spec(
        tmp_path,
        "model: model.onnx\nprofiles:\n"
        "  - x: {min: [1,3,16,16], opt: [1,3,16,16], max: [2,3,16,16]}\n"
        "  - x: {min: [4,3,16,16], opt: [8,3,16,16], max: [16,3,16,16]}\n"
        "target: {compute_capabilities: [8.9]}\n",
    )
    result = run("build", spec)
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "build" / "spec.report.json").read_text())
    assert [p["x"]["max"] for p in report["profiles"]] == [[2, 3, 16, 16], [16, 3, 16, 16]]
    assert [p["max"] for p in report["bindings"][0]["profiles"]] == [[2, 3, 16, 16], [16, 3, 16, 16]]
    # TensorRT compiles a kernel set per profile; the map (and every cost total) is profile 0's.
    counts = report["fusion"]["counts"]
    assert counts["kernels_per_profile"] == {"0": counts["kernels"], "1": counts["kernels"]}
    assert not any(
        "[profile" in k["name"] or "[profile" in t["name"]
        for k in report["fusion"]["kernels"]
        for t in k["inputs"] + k["outputs"]
    )
    assert "one kernel set per optimization profile (profile 0: " in result.stderr
    (tmp_path / "weights.bin").unlink()
    missing = run("build", spec)
    assert missing.exit_code == 2
    assert (
        f"error: model: external data file {tmp_path / 'weights.bin'} is missing; keep it next to model.onnx"
        in missing.stderr
    )


def test_the_plan_is_hashed_and_written_beside_the_report(model_dir, monkeypatch):
    import hashlib
    import threading

    import trtc.outputs

    writes, real_fill = [], trtc.outputs._fill

    def fill(handle, data):
        writes.append((threading.current_thread().name, len(data)))
        return real_fill(handle, data)

    monkeypatch.setattr(trtc.outputs, "_fill", fill)
    spec = models.write_spec(model_dir, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    assert run("build", spec).exit_code == 0
    plan = (model_dir / "build" / "spec.plan").read_bytes()
    report = json.loads((model_dir / "build" / "spec.report.json").read_text())
    assert report["build"]["plan_sha256"] == hashlib.sha256(plan).hexdigest()
    assert ("trtc-write", len(plan)) in writes  # not in the main thread, which makes the report meanwhile


@pytest.mark.parametrize("capabilities", [None, "[8.9]"])
def test_the_kernel_table_orders_by_estimated_time_only_when_there_is_one(demo_copy, capabilities):
    # Without a target GPU no kernel has a time: the short table must not claim to show the
    # slowest kernels, nor carry a column of dashes.
    text = demo_copy.read_text().replace("compute_capabilities: [8.9]", f"compute_capabilities: {capabilities}")
    demo_copy.write_text(text if capabilities else text.replace("compute_capabilities: None", "# no target"))
    result = run("build", demo_copy)
    assert result.exit_code == 0, result.stderr
    report = json.loads((demo_copy.parent / "build" / "demo.report.json").read_text())
    shown, printed = 12, " ".join(result.stderr.split())  # rich wraps the table's title
    assert len(report["fusion"]["kernels"]) > shown  # the table is cut short
    # Costs depend on the shapes: the printed ones say which.
    assert "of memory traffic at the opt shapes" in printed and "memory traffic at the opt shapes: " in printed
    if capabilities:
        assert f"the {shown} kernels with the largest estimated time" in printed
        assert "est. µs" in printed
    else:
        assert "largest estimated time" not in printed and "est. µs" not in printed
        assert (
            f"the {shown} kernels that fuse the most ONNX nodes, of {len(report['fusion']['kernels'])} "
            "(no time estimate: no target GPU; set target.gpu)" in printed
        )

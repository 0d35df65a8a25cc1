"""Make-style `trtc build`: up-to-date skips, every input that decides the plan triggers a
rebuild, dependency files, the plan lock, and that a no-op run never imports the heavy stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest

from tests import models
from tests.cli_runner import run
from trtc.incremental import depfile
from trtc.incremental.lock import plan_lock

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

SPEC = "model: model.onnx\nmax_batch: 4\ntarget: {compute_capabilities: [8.9]}\n"


def built(folder):
    return json.loads((folder / "build" / "spec.report.json").read_text())


def test_second_build_is_up_to_date_and_writes_nothing(model_dir):
    spec = models.write_spec(model_dir, SPEC)
    first = run("build", spec)
    assert first.exit_code == 0, first.stderr
    stamps = {p.name: p.stat().st_mtime_ns for p in (model_dir / "build").iterdir()}
    second = run("build", spec)
    assert second.exit_code == 0, second.stderr
    assert second.stderr == "spec: up to date (build/spec.plan); --force rebuilds\n".replace(
        "build/", f"{_short(model_dir)}/build/"
    )
    assert {p.name: p.stat().st_mtime_ns for p in (model_dir / "build").iterdir()} == stamps
    forced = run("build", spec, "--force")
    assert forced.exit_code == 0 and "(--force)" in forced.stderr
    assert (
        built(model_dir)["build"]["built_at"]
        and (model_dir / "build" / "spec.plan").stat().st_mtime_ns != stamps["spec.plan"]
    )


def _short(folder):
    return os.path.relpath(folder) if not os.path.relpath(folder).startswith("..") else str(folder)


def test_each_input_that_decides_the_plan_triggers_a_rebuild(model_dir):
    spec = models.write_spec(model_dir, SPEC)
    assert run("build", spec).exit_code == 0
    fingerprint = built(model_dir)["build"]["fingerprint"]
    assert fingerprint["components"]["backend"] == f"tensorrt-rtx {built(model_dir)['build']['backend_version']}"

    def rebuild_reason(*args):
        result = run("build", spec, "--json", *args)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["builds"][0]["reason"]

    assert rebuild_reason("--set", "max_batch=8") == "the spec changed"
    assert rebuild_reason("--set", "max_batch=8") == "up to date"
    assert rebuild_reason() == "the spec changed"  # back to the file's own max_batch
    models.save(models.conv_bn_relu(channels=4), model_dir / "model.onnx")
    assert rebuild_reason() == "the model changed"
    plan = model_dir / "build" / "spec.plan"
    plan.write_bytes(plan.read_bytes()[:-1] + b"x")
    assert rebuild_reason() == "spec.plan is not the plan the report describes"
    (model_dir / "build" / "spec.report.md").unlink()
    assert rebuild_reason() == "spec.report.md is missing"
    assert rebuild_reason() == "up to date"
    report = model_dir / "build" / "spec.report.json"
    older = json.loads(report.read_text())
    del older["build"]["fingerprint"]
    report.write_text(json.dumps(older))
    assert rebuild_reason() == "the last report has no fingerprint (an older trtc wrote it)"


def test_external_data_and_calibration_files_are_dependencies(tmp_path):
    model = models.conv_bn_relu()
    onnx.save(
        model,
        str(tmp_path / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    (tmp_path / "calib").mkdir()
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calib" / "a.npy", rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    spec = models.write_spec(tmp_path, SPEC + "precision: {mode: int8, calibration: {data: calib, samples: 4}}\n")
    dep = tmp_path / "out" / "spec.d"
    first = run("build", spec, "--depfile", dep)
    assert first.exit_code == 0, first.stderr
    rule = dep.read_text()
    head, prerequisites = rule.split("\n\n")[0].split(":", 1)
    assert {os.path.basename(t) for t in head.split()} == {
        "spec.plan",
        "spec.report.json",
        "spec.report.md",
        "spec.report.html",
        "spec.build.log",
    }
    named = {os.path.basename(p.strip(" \\")) for p in prerequisites.split("\n") if p.strip(" \\")}
    assert named == {"spec.yaml", "model.onnx", "weights.bin", "calib", "a.npy"}

    weights = tmp_path / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:-4] + np.float32(0.5).tobytes())
    again = run("build", spec, "--json")
    assert json.loads(again.stdout)["builds"][0]["reason"] == "the model changed"
    np.save(tmp_path / "calib" / "b.npy", rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    third = run("build", spec, "--json", "--depfile", dep)
    assert json.loads(third.stdout)["builds"][0]["reason"] == "the calibration data changed"
    assert "b.npy" in dep.read_text()


def test_depfile_escapes_what_make_treats_specially(tmp_path):
    rule = depfile.render([tmp_path / "out dir" / "a.plan"], [tmp_path / "my model$1.onnx", tmp_path / "x#.npy"])
    assert "out\\ dir/a.plan:" in rule
    assert "my\\ model$$1.onnx" in rule and "x\\#.npy" in rule


def test_json_puts_one_object_on_stdout_even_for_errors(model_dir):
    spec = models.write_spec(model_dir, SPEC)
    ok = run("build", spec, "--json")
    document = json.loads(ok.stdout)
    assert document["exit_code"] == 0 and document["builds"][0]["status"] == "built"
    assert document["builds"][0]["report"]["fusion"]["counts"]["kernels"] >= 1
    assert "built" in ok.stderr  # people still see the summary, on stderr
    bad = run("build", spec, "--json", "--set", "precision=fp12")
    assert bad.exit_code == 2
    assert json.loads(bad.stdout)["error"]["message"].startswith(
        "--set precision: precision.mode: expected one of fp32"
    )


def test_several_specs_build_in_parallel_with_one_summary(model_dir):
    first = models.write_spec(model_dir, SPEC, "a.yaml")
    second = models.write_spec(model_dir, SPEC + "precision: fp16\n", "b.yaml")
    # A subprocess: the workers write to the real stderr, which CliRunner does not capture.
    result = subprocess.run(
        [sys.executable, "-m", "trtc", "build", str(first), str(second), "-j", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    builds = json.loads(result.stdout)["builds"]
    assert [(b["name"], b["status"], b["report"]["precision"]["mode"]) for b in builds] == [
        ("a", "built", "fp32"),
        ("b", "built", "fp16"),
    ]
    assert (model_dir / "build" / "a.plan").exists() and (model_dir / "build" / "b.plan").exists()
    assert "[b] building b (no previous build)" in result.stderr
    again = run("build", first, second, "-j", "2")
    assert again.exit_code == 0 and again.stderr.count("up to date") == 2


def test_one_failing_spec_gives_its_exit_code_and_the_others_still_build(model_dir):
    good = models.write_spec(model_dir, SPEC, "good.yaml")
    models.save(models.with_unsupported_ops(), model_dir / "bad.onnx")
    bad = models.write_spec(model_dir, SPEC.replace("model.onnx", "bad.onnx"), "bad.yaml")
    result = run("build", bad, good, "-j", "2")
    assert result.exit_code == 1
    assert (model_dir / "build" / "good.plan").exists() and not (model_dir / "build" / "bad.plan").exists()
    assert "error: bad:" in result.stderr


def test_two_specs_writing_one_output_are_refused_before_building(model_dir):
    first = models.write_spec(model_dir, SPEC + "output: {plan: out/x.plan}\n", "a.yaml")
    second = models.write_spec(model_dir, SPEC + "output: {plan: out/x.plan}\n", "b.yaml")
    result = run("build", first, second, "-j", "2")
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: {first} and {second} both write {model_dir / 'out' / 'x.plan'}; give one of them another output: path\n"
    )
    assert not (model_dir / "out").exists()
    twice = run("build", first, first)
    assert twice.exit_code == 2 and "is named twice" in twice.stderr


def test_lock_makes_a_second_writer_wait(model_dir):
    spec = models.write_spec(model_dir, SPEC)
    plan = model_dir / "build" / "spec.plan"
    with plan_lock(plan, on_wait=lambda _: None):
        process = subprocess.Popen(
            [sys.executable, "-m", "trtc", "build", str(spec)], stderr=subprocess.PIPE, text=True
        )
        first_line = process.stderr.readline()
        assert first_line.startswith(f"warning: waiting for another trtc process that is writing {plan}")
        time.sleep(0.5)
        assert process.poll() is None and not plan.exists()
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 0, rest
    assert plan.exists()


def test_no_op_build_imports_nothing_heavy(model_dir):
    """Neither the model's libraries nor TensorRT; nor jsonschema (the spec validated on the first
    build) nor rich (one plain line to print)."""
    spec = models.write_spec(model_dir, SPEC)
    assert run("build", spec).exit_code == 0
    probe = (
        "import sys\nfrom trtc.cli import main\ntry:\n    main(['build', sys.argv[1]])\nexcept SystemExit as e:\n    code = e.code\n"
        "heavy = [m for m in ('onnx', 'onnxruntime', 'tensorrt_rtx', 'tensorrt', 'numpy', 'jsonschema', 'rich') if m in sys.modules]\n"
        "print(code, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(spec)], capture_output=True, text=True, timeout=60)
    assert result.stdout == "0 []\n", result.stderr
    assert "up to date" in result.stderr


def test_github_step_summary_gets_the_markdown_report(model_dir, tmp_path):
    spec = models.write_spec(model_dir, SPEC)
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    assert run("build", spec, env={"GITHUB_STEP_SUMMARY": str(summary)}).exit_code == 0
    assert run("build", spec, env={"GITHUB_STEP_SUMMARY": str(summary)}).exit_code == 0
    text = summary.read_text()
    assert text.startswith("# earlier step\n")
    assert (model_dir / "build" / "spec.report.md").read_text() in text
    assert text.rstrip().endswith("**trtc spec**: up to date, not rebuilt.")


def _on_a_terminal(args, env):
    """Run trtc with stderr on a pseudo-terminal (where colours are on unless NO_COLOR)."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "trtc", *args],
        stderr=follower,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "TERM": "xterm-256color", **env},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colours_follow_the_terminal_and_no_color(tmp_path):
    missing = str(tmp_path / "missing.yaml")
    coloured = _on_a_terminal(["build", missing], {})
    plain = _on_a_terminal(["build", missing], {"NO_COLOR": "1"})
    assert "\x1b[" in coloured and "error:" in coloured
    assert "\x1b[" not in plain and plain.startswith("error: ")


def test_trtc_code_identity_follows_its_files(tmp_path):
    from trtc.incremental.fingerprint import code_identity

    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.json").write_text("{}")
    first = code_identity(package)
    assert code_identity(package) == first
    (package / "a.py").write_text("x = 22\n")  # an edit in an editable install
    assert code_identity(package) != first


def test_depfile_with_several_specs_is_a_usage_error_and_builds_nothing(model_dir):
    first = models.write_spec(model_dir, SPEC, "a.yaml")
    second = models.write_spec(model_dir, SPEC, "b.yaml")
    result = run("build", first, second, "--depfile", model_dir / "deps.d")
    assert result.exit_code == 2
    assert (
        result.stderr
        == "error: --depfile takes one SPEC; run trtc build once per spec to get one dependency file each\n"
    )
    assert not (model_dir / "build").exists() and not (model_dir / "deps.d").exists()


def test_the_calibration_cache_is_an_input_once_a_build_has_read_or_written_it(tmp_path):
    # The ranges in the cache decide the plan: a hand-edited or deleted cache rebuilds, and Make
    # learns of it through the dependency file.
    models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    (tmp_path / "calib").mkdir()
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calib" / "a.npy", rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    spec = models.write_spec(
        tmp_path, SPEC + "precision: {mode: int8, calibration: {data: calib, samples: 4, cache: ranges.json}}\n"
    )
    dep, cache = tmp_path / "spec.d", tmp_path / "ranges.json"

    def build(*args):
        result = run("build", spec, "--json", *args)
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)["builds"][0]

    assert build("--depfile", dep)["reason"] == "no previous build"
    assert cache.is_file() and "ranges.json" in dep.read_text()
    assert build()["reason"] == "up to date"
    document = json.loads(cache.read_text())
    tensor = sorted(document["ranges"])[0]
    document["ranges"][tensor] *= 2
    cache.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    edited = build()
    assert edited["reason"] == "the calibration cache changed"
    assert built(tmp_path)["calibration"]["cache"] == "hit"
    assert build()["reason"] == "up to date"
    cache.unlink()
    assert build()["reason"] == "the calibration cache changed"
    assert built(tmp_path)["calibration"]["cache"] == "written" and cache.is_file()
    assert build()["reason"] == "up to date"

"""`--depfile` under real GNU Make: every file name Make can express is escaped so that a Makefile
that `-include`s the rule parses it, stays up to date, rebuilds when the file changes and keeps
working when it is deleted; names Make cannot express are refused before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from tests import models
from tests.structure import require_make
from trtc.cli import main
from trtc.errors import UsageError
from trtc.incremental import depfile

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop


@pytest.fixture(autouse=True)
def _make_installed():
    require_make()


# The recipe echoes itself (no '@'), so a name that turned into `.SILENT:` would show.
MAKEFILE = "all: out\n-include deps.d\nout:\n\techo rebuilt >> log; touch out\n"
RECIPE = "echo rebuilt >> log; touch out"

HOSTILE = [
    "a b",
    "a:b",
    "a#b",
    "a$b",
    "a$(shell touch pwned)b",
    "a%b",
    "a=b",
    "a|b",
    "a*b",
    "a?b",
    "a[b]",
    "a]b",
    "a,b",
    "a'b\"c`d",
    "a&b!c@d{e}",
    "é ☃",
    "~x",
    "~",
    "a\\b",
    "a\\",
    "a\\ b",
    "a\\:b",
    "a\\#b",
    "a\\%b",
    "a\\=b",
    "a\\|b",
    "a\\$b",
    "(b)",
    "a(b",
    "a)b",
    "a(b).c",
    "-a",
    ".hidden",
    ".SILENT",
    ".PHONY",
    "dir with space/a:b",
    "~dir/a",
    "a  b ",
    " lead",
    "a\\\\ b",
    "a%b|c=d:e$f#g h*i",
]


def _make(folder, *args):
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=folder, capture_output=True, text=True, timeout=60
    )


def _age(path, seconds):
    os.utime(path, (seconds, seconds), follow_symlinks=False)


@pytest.mark.parametrize("name", HOSTILE, ids=repr)
def test_make_follows_a_hostile_prerequisite(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    hostile = tmp_path / name
    hostile.parent.mkdir(parents=True, exist_ok=True)
    hostile.write_text("x")
    (tmp_path / "Makefile").write_text(MAKEFILE)
    depfile.write(tmp_path / "deps.d", [tmp_path / "out"], [hostile])
    _age(hostile, 1_000_000)

    first = _make(tmp_path)
    assert (first.returncode, first.stderr, first.stdout) == (0, "", RECIPE + "\n")
    _age(tmp_path / "out", 2_000_000)
    assert _make(tmp_path, "-q").returncode == 0, "not up to date: Make read another name"
    _age(hostile, 3_000_000)
    changed = _make(tmp_path)
    assert (changed.returncode, changed.stderr, changed.stdout) == (0, "", RECIPE + "\n"), (
        "the changed file did not rebuild"
    )
    hostile.unlink()
    deleted = _make(tmp_path)
    assert (deleted.returncode, deleted.stderr) == (0, ""), "a deleted prerequisite broke make"
    assert (tmp_path / "log").read_text() == "rebuilt\n" * 3
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", [n for n in HOSTILE if "=" not in n and "/" not in n], ids=repr)
def test_make_names_a_hostile_target(tmp_path, monkeypatch, name):
    """A plan path with the same characters: the rule's targets are exactly the files."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Makefile").write_text(MAKEFILE + "%::\n\techo remade\n")  # a recipe for any target, for -q to judge
    (tmp_path / "dep").write_text("x")
    target = tmp_path / name
    target.write_text("plan")
    depfile.write(tmp_path / "deps.d", [tmp_path / "out", target], [tmp_path / "dep"])
    goal = str(target) if name.startswith((".", "~")) else name  # Make's special names are written absolute
    for path, seconds in ((tmp_path / "dep", 1_000_000), (target, 2_000_000)):
        _age(path, seconds)
    assert _make(tmp_path).returncode == 0
    assert _make(tmp_path, "-q", "--", goal).returncode == 0
    _age(tmp_path / "dep", 3_000_000)
    assert _make(tmp_path, "-q", "--", goal).returncode == 1, "Make does not see the target depend on the spec"


@pytest.mark.parametrize(
    "name,what",
    [
        ("a\nb", "a newline"),
        ("a\tb", "a tab"),
        ("a;b", "a ';'"),
        ("a\r", "a carriage return"),
        ("lib(member)", "a name Make reads as an archive member"),
    ],
)
def test_names_make_cannot_express_are_refused(tmp_path, monkeypatch, name, what):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as caught:
        depfile.write(tmp_path / "deps.d", [tmp_path / "out"], [tmp_path / "ok", tmp_path / name])
    assert caught.value.message == (
        f"--depfile: Make cannot name the file {name!r} ({what}) in a rule; rename it, or build without --depfile"
    )
    assert "\n" not in caught.value.message and not (tmp_path / "deps.d").exists()


def _calibrated_spec(folder, sample_name, model_name="model.onnx"):
    models.save(models.conv_bn_relu(), folder / model_name)
    (folder / "calib").mkdir()
    np.save(folder / "calib" / "a.npy", np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32))
    sample = folder / "calib" / sample_name
    os.replace(folder / "calib" / "a.npy", sample)
    return models.write_spec(
        folder,
        f"model: {model_name!r}\nmax_batch: 2\ntarget: {{compute_capabilities: [8.9]}}\n"
        "precision: {mode: int8, calibration: {data: calib, samples: 2}}\n",
    ), sample


def test_an_injected_recipe_in_a_calibration_name_is_refused_before_building(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, sample = _calibrated_spec(tmp_path, "x\n\ttouch pwned\ny.npy")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(main, ["build", str(spec), "--depfile", "deps.d"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --depfile: Make cannot name the file {'calib/' + sample.name!r} (a newline) in a rule; "
        "rename it, or build without --depfile\n"
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no plan, no report, no depfile


def test_make_rebuilds_a_plan_whose_model_and_data_have_hostile_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, sample = _calibrated_spec(tmp_path, "s #1 $x %y =z |w :q.npy", model_name="m:1.onnx")
    (tmp_path / "Makefile").write_text("all: build/spec.plan\n-include deps.d\nbuild/spec.plan:\n\techo rebuilt\n")
    result = CliRunner().invoke(main, ["build", str(spec), "--depfile", "deps.d"])
    assert result.exit_code == 0, result.stderr
    assert _make(tmp_path, "-q").returncode == 0, _make(tmp_path).stderr
    past = time.time() - 100
    for path in (sample, sample.parent, tmp_path / "m:1.onnx", spec):
        _age(path, past - 2)
    _age(tmp_path / "build" / "spec.plan", past - 1)
    for step, changed in enumerate((sample, tmp_path / "m:1.onnx", spec)):
        _age(changed, past + 2 * step)
        rebuilt = _make(tmp_path)
        assert (rebuilt.returncode, rebuilt.stdout, rebuilt.stderr) == (0, "echo rebuilt\nrebuilt\n", ""), changed.name
        _age(tmp_path / "build" / "spec.plan", past + 2 * step + 1)


def test_an_external_data_name_make_cannot_express_is_refused_with_nothing_written(tmp_path, monkeypatch):
    """The model names its external data files, so they are known only once it is read."""
    monkeypatch.chdir(tmp_path)
    onnx.save(
        models.conv_bn_relu(),
        str(tmp_path / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights;1.bin",
        size_threshold=0,
    )
    spec = models.write_spec(tmp_path, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    result = CliRunner().invoke(main, ["build", str(spec), "--depfile", "deps.d"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "error: --depfile: Make cannot name the file 'weights;1.bin' (a ';') in a rule; "
        "rename it, or build without --depfile"
    )
    assert "building with" not in result.stderr  # refused before TensorRT ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "spec.yaml", "weights;1.bin"]


def test_a_plan_that_wrote_its_calibration_cache_is_up_to_date_for_make(tmp_path, monkeypatch):
    # The cache is a prerequisite of the plan (a hand-edited one rebuilds): written after the
    # plan, it made every later `make` run trtc again.
    monkeypatch.chdir(tmp_path)
    spec, _ = _calibrated_spec(tmp_path, "a.npy")
    spec.write_text(spec.read_text().replace("samples: 2}", "samples: 2, cache: ranges.json}"))
    (tmp_path / "Makefile").write_text(
        f"build/spec.plan: spec.yaml\n\t{sys.executable} -m trtc build spec.yaml --depfile deps.d -q\n-include deps.d\n"
    )
    built = _make(tmp_path)
    assert built.returncode == 0 and (tmp_path / "ranges.json").is_file(), built.stderr
    assert "ranges.json" in (tmp_path / "deps.d").read_text()
    assert (tmp_path / "ranges.json").stat().st_mtime_ns <= (tmp_path / "build" / "spec.plan").stat().st_mtime_ns
    assert _make(tmp_path, "-q").returncode == 0  # nothing to do

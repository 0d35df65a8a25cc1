"""The cookbook's Makefile works as documented: run by real `make` on a copy of the demo, it
builds the plan, does nothing the second time, and rebuilds when the model changes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples"

pytestmark = [pytest.mark.build, pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "models", tmp_path / "models")
    shutil.copytree(REPO / "configs", tmp_path / "configs", ignore=shutil.ignore_patterns("build"))
    shutil.copy(EXAMPLES / "Makefile", tmp_path / "Makefile")
    return tmp_path


def make(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run(
        ["make", f"TRTC={sys.executable} -m trtc", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_makefile_builds_skips_and_rebuilds(project: Path):
    plan = project / "configs" / "build" / "demo.plan"
    first = make(project)
    assert first.returncode == 0, first.stderr
    assert plan.is_file() and (project / "configs" / "build" / "demo.report.json").is_file()
    depfile = (project / "configs" / "build" / "demo.d").read_text()
    assert "configs/build/demo.plan" in depfile and "models/demo.onnx" in depfile and "configs/demo.yaml" in depfile

    assert make(project, "-q").returncode == 0  # nothing to do: -q exits 0 only when every target is current
    second = make(project)
    assert "Nothing to be done" in second.stdout and "trtc" not in second.stdout + second.stderr

    # A newer model file with the same bytes: Make runs trtc, which finds the fingerprint unchanged.
    first_plan = plan.read_bytes()
    os.utime(project / "models" / "demo.onnx")
    assert make(project, "-q").returncode == 1
    touched = make(project)
    assert touched.returncode == 0 and "up to date" in touched.stderr
    assert plan.read_bytes() == first_plan
    assert make(project, "-q").returncode == 0

    # A changed model (the depfile names it; the Makefile itself does not): a real rebuild.
    model = onnx.load(str(project / "models" / "demo.onnx"))
    model.doc_string = "retrained"
    onnx.save(model, str(project / "models" / "demo.onnx"))
    rebuilt = make(project)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "up to date" not in rebuilt.stderr and "built configs/build/demo.plan" in rebuilt.stderr
    report = json.loads((project / "configs" / "build" / "demo.report.json").read_text())
    assert (
        report["build"]["model_sha256"] == hashlib.sha256((project / "models" / "demo.onnx").read_bytes()).hexdigest()
    )
    assert make(project, "-q").returncode == 0

    assert make(project, "clean").returncode == 0
    assert not (project / "configs" / "build").exists() or not any((project / "configs" / "build").iterdir())


def test_github_actions_example_is_valid_yaml_and_runs_trtc():
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    runs = [
        line.strip() for step in steps for line in step.get("run", "").splitlines() if line.strip().startswith("trtc ")
    ]
    assert any(line.startswith("trtc build") and "--json" in line for line in runs)
    for line in runs:
        _check_trtc_command(line.removeprefix("trtc "), "github-actions.yml")


def test_commands_shown_in_the_docs_exist():
    """Every `$ trtc ...` line in docs/ names a real command and only options it has."""
    shown = 0
    for page in sorted((REPO / "docs").glob("*.md")):
        for line in page.read_text().splitlines():
            if line.strip().startswith("$ trtc "):
                _check_trtc_command(line.strip().removeprefix("$ trtc "), page.name)
                shown += 1
    assert shown >= 20


def _check_trtc_command(text: str, where: str) -> None:
    from trtc.cli import main

    words = shlex.split(re.split(r" \| | 2>| >", text)[0])
    command = main.commands.get(words[0])
    assert command is not None, f"{where}: unknown command in 'trtc {text}'"
    options = {
        opt for param in command.params for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
    }
    for word in words[1:]:
        if word.startswith("-"):
            assert word.split("=")[0] in options, f"{where}: trtc {words[0]} has no option {word}"

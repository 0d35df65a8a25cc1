from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests import models
from tests.report_checks import check_report_file

pytest_plugins = ["tests.watchdog"]

REPO = Path(__file__).resolve().parents[1]
_checked: dict[Path, int] = {}  # report -> modification time when checked


@pytest.fixture(autouse=True, scope="session")
def temp_folder_under_pytest(tmp_path_factory):
    """What trtc leaves in the temp folder on purpose (a failed build's log, plan locks, spec
    markers) goes under pytest's temp root, which pytest prunes: the suite leaves nothing in the
    machine's /tmp. Subprocesses inherit it through TMPDIR."""
    folder = str(tmp_path_factory.mktemp("temp"))
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = folder, folder
    yield
    if saved[0] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[0]
    tempfile.tempdir = saved[1]


@pytest.fixture(autouse=True)
def every_report_accounts_for_every_node(tmp_path_factory):
    """After each test, every build report written under pytest's temp root since the last check
    (by this test or by a fixture it used) must account for every ONNX node and its FLOPs."""
    yield
    for path in Path(tmp_path_factory.getbasetemp()).rglob(
        "*.report.json"
    ):  # what builds write; tests craft other JSON
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:  # a test removed it
            continue
        if _checked.get(path) != stamp:
            _checked[path] = stamp
            check_report_file(path)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A folder holding model.onnx (dynamic batch) that specs in tests refer to."""
    models.save(models.conv_bn_relu(), tmp_path / "model.onnx")
    return tmp_path


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """The bundled demo spec and model copied to a scratch folder; returns the spec path."""
    shutil.copytree(REPO / "models", tmp_path / "models")
    shutil.copytree(REPO / "configs", tmp_path / "configs", ignore=shutil.ignore_patterns("build"))
    return tmp_path / "configs" / "demo.yaml"

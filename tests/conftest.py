from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import models

pytest_plugins = ["tests.watchdog"]

REPO = Path(__file__).resolve().parents[1]


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

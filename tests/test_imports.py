"""The CLI starts fast: importing it loads neither TensorRT nor ONNX nor onnxruntime, and only
trtc/backend/ imports TensorRT at all."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "trtc"


def test_cli_import_is_light():
    code = "import sys, trtc.cli; print(','.join(m for m in ('tensorrt', 'tensorrt_rtx', 'onnx', 'onnxruntime') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_only_the_backend_imports_tensorrt():
    importers = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if re.search(r"^\s*(import|from)\s+tensorrt", path.read_text(), re.MULTILINE)
        or '"tensorrt_rtx"' in path.read_text()
    ]
    assert importers == ["backend/trt_import.py"]


def test_the_graph_and_precision_steps_import_no_spec_reader():
    # Used as a library (a calibration of its own, a benchmark), the core's steps need the spec's
    # objects, not the YAML reader and the spec loader (50 ms of imports).
    code = (
        "import sys, trtc.graph.io, trtc.graph.profiles, trtc.precision.calibrate, trtc.precision.qdq; "
        "print(','.join(sorted(m for m in sys.modules if m in ('yaml', 'click', 'jsonschema', 'trtc.spec.load'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""

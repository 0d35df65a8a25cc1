"""TensorRT objects are never freed by Python's cyclic collector inside a TensorRT callback.

TensorRT-RTX calls the logger while it holds the mutex that a builder's destructor takes: a
collection inside that callback which frees an older builder hangs the process for good. Each
case below runs in a child process, because on failure it never returns.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

from tests import models
from trtc.backend.builder import BuildSettings, ModelSource, build_plan
from trtc.backend.trt_import import import_tensorrt
from trtc.errors import BuildError, SpecError
from trtc.spec.model import ShapeRange

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

REPO_ROOT = __file__.rsplit("/tests/", 1)[0]

# A first TensorRT task fails and its exception ends up in a reference cycle (what a traceback
# kept by a logger, a retry loop or a test framework does); then a second task runs with a
# logger that collects on every message, which is what any allocation in a callback may do.
CHILD = textwrap.dedent("""
    import gc, sys
    sys.path.insert(0, {root!r})
    from tests import models
    from trtc.backend import builder, support, trt_logger
    from trtc.backend.builder import BuildSettings, ModelSource, build_plan
    from trtc.backend.support import check_support
    from trtc.backend.trt_import import import_tensorrt
    from trtc.errors import TrtcError
    from trtc.spec.model import ShapeRange

    rtx = import_tensorrt("tensorrt-rtx")
    image = {{"x": ShapeRange((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))}}
    vector = {{"x": ShapeRange((1, 32), (4, 32), (8, 32))}}
    failures = {{
        "parser": (models.with_unsupported_ops(), image, ("8.9",)),
        "builder": (models.gemm_head(), vector, ("7.5",)),  # no FP32 GEMM for Turing
        "target": (models.conv_bn_relu(), image, ("9.0",)),
    }}
    model, profile, targets = failures[{failure!r}]
    try:
        build_plan(rtx, ModelSource(data=model.SerializeToString()), BuildSettings([profile], compute_capabilities=targets))
    except TrtcError as error:
        cycle = [error]
        cycle.append(cycle)
        del error, cycle
    else:
        raise SystemExit("the first build was expected to fail")

    def collecting_logger(lib):
        logger = trt_logger.capturing_logger(lib)

        class Collecting(list):
            def append(self, item):
                gc.collect()
                super().append(item)

        logger.messages = Collecting()
        return logger

    builder.capturing_logger = support.capturing_logger = collecting_logger
    settings = BuildSettings([image], compute_capabilities=("8.9",))
    source = ModelSource(data=models.conv_bn_relu().SerializeToString())
    if {second!r} == "build":
        print("plan bytes", len(build_plan(rtx, source, settings).plan))
    else:
        print("problems", len(check_support(rtx, source, settings).problems))
""")


@pytest.mark.parametrize("second", ["build", "check"])
@pytest.mark.parametrize("failure", ["parser", "builder", "target"])
def test_a_failed_task_in_a_reference_cycle_cannot_deadlock_the_next(failure, second):
    child = CHILD.format(root=REPO_ROOT, failure=failure, second=second)
    try:
        done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"deadlock: a {second} after a {failure} failure did not finish in 120 s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("plan bytes" if second == "build" else "problems 0")


def test_the_collector_is_back_on_after_a_task_however_it_ends():
    rtx = import_tensorrt("tensorrt-rtx")
    image = {"x": ShapeRange((1, 3, 16, 16), (4, 3, 16, 16), (8, 3, 16, 16))}
    assert gc.isenabled()
    build_plan(
        rtx,
        ModelSource(data=models.conv_bn_relu().SerializeToString()),
        BuildSettings([image], compute_capabilities=("8.9",)),
    )
    assert gc.isenabled()
    with pytest.raises(BuildError):
        build_plan(rtx, ModelSource(data=models.with_unsupported_ops().SerializeToString()), BuildSettings([image]))
    with pytest.raises(SpecError):
        build_plan(
            rtx,
            ModelSource(data=models.conv_bn_relu().SerializeToString()),
            BuildSettings([image], compute_capabilities=("9.0",)),
        )
    assert gc.isenabled()

"""The `trtc` process: the CLI, then an exit that skips tearing the interpreter down.

Once the CLI has returned, every output is committed and closed, and all that is left is
Python finalizing onnx, onnxruntime, TensorRT and the rest module by module: 0.3-0.4 s after a
ResNet-50-shaped build on an idle machine, 0.1-0.2 s after a small one. The streams are flushed
and the process ends with the CLI's exit code. In-process callers (tests) use `trtc.cli.main`.
"""

from __future__ import annotations

import os
import sys
import time

STARTED = time.perf_counter()  # once Python has started: the build's "cli and spec" phase runs from here


def run() -> None:
    import gc

    gc.disable()  # the CLI's imports make objects that live as long as the process: collecting finds nothing
    from trtc.cli import main

    gc.enable()

    try:
        main()
    except SystemExit as done:
        if done.code is not None and not isinstance(done.code, int):
            raise  # a message for Python to print
        from trtc import interrupts

        interrupts.clean_up_at_exit()  # threads still at work end with the process: their temporary files go first
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can be said
                pass
        os._exit(done.code or 0)

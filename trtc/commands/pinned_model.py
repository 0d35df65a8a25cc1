"""The spec's model as TensorRT's network will see it, before any graph pass: loaded, unnamed
nodes named, `outputs:` selected, profiles resolved and inputs pinned. Shared by `trtc build`
(trtc/commands/prepare.py) and `trtc check`."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import onnx

from trtc.graph.io import (
    LoadedModel,
    drop_initializer_inputs,
    load_model,
    name_unnamed_nodes,
    normalize_default_domain,
    select_outputs,
)
from trtc.graph.profiles import model_inputs, resolve_profiles
from trtc.graph.random_inputs import random_feeds
from trtc.graph.shape_inputs import attach_shape_values, feed_values
from trtc.graph.shared_dims import separate_shared_dims
from trtc.graph.weights import structure_of
from trtc.passes import Change, PassRun
from trtc.passes.loops import onnxruntime_agreement
from trtc.passes.pin import pin_inputs
from trtc.spec.model import Spec


@dataclass
class PinnedModel:
    """The spec's model after the steps that decide what TensorRT's network is: outputs
    selected, profiles complete, inputs pinned. Shared by `trtc build` and `trtc check`."""

    loaded: LoadedModel
    model: onnx.ModelProto
    profiles: list
    sections: dict[str, object]
    computes_as_file: bool  # computes what the file does: only names changed (onnxruntime may run the file's bytes)
    as_read: bytes  # the structure as read from the file, before any step (serialized `structure_of`)
    file_nodes: dict[str, str]  # the file's node name -> op type, unnamed ones named
    steps: list[PassRun]  # what `outputs:` pruned and pinning folded, inlined or unrolled, as passes report it


def load_pinned_model(spec: Spec, observer, weight_places: bool = False) -> PinnedModel:
    observer.stage("loading model")
    loaded = load_model(spec.model, weight_places)
    model = loaded.proto
    as_read = structure_of(model).SerializeToString()
    sections: dict[str, object] = {}
    renamed = name_unnamed_nodes(model.graph)
    normalize_default_domain(model)
    drop_initializer_inputs(model)
    file_nodes = {node.name: node.op_type for node in model.graph.node}
    pruned = select_outputs(model, spec.outputs) if spec.outputs else []
    sections["graph"] = {"onnx_nodes": len(model.graph.node), "renamed_nodes": renamed, "pruned_nodes": pruned}
    profiles, warnings = resolve_profiles(model_inputs(model), spec)
    for warning in warnings:
        observer.warning(warning)
    attach_shape_values(model, profiles, spec)
    shared = separate_shared_dims(model, profiles)
    if shared:
        sections["graph"]["separated_dims"] = shared
    pinned_values = {name: s.value for name, s in spec.input_settings.items() if s.value is not None}
    static_shapes = {
        name: r.min for name, r in profiles[0].items() if all(p[name].min == p[name].max == r.min for p in profiles)
    }
    unroll_check = onnxruntime_agreement(
        functools.partial(
            random_feeds,
            model_inputs(model),
            {n: r.min for n, r in profiles[0].items()},
            spec.value_ranges,
            fixed=feed_values(profiles[0], "min"),
        )
    )
    shape_ranges = {
        name: (
            tuple(min(p[name].min[axis] for p in profiles) for axis in range(len(r.min))),
            tuple(max(p[name].max[axis] for p in profiles) for axis in range(len(r.max))),
        )
        for name, r in profiles[0].items()
    }
    pinned_away: list[Change] = []
    pinning = pin_inputs(model, pinned_values, static_shapes, unroll_check, shape_ranges, pinned_away)
    if pinned_values or pinning["resolved_control_flow"]:
        sections["pinning"] = pinning
    # Node names and dim names do not change what onnxruntime computes: the output-shape check
    # and the verification may run the user's file itself.
    computes_as_file = not pruned and not pinned_values and not pinning["resolved_control_flow"]
    steps = [
        PassRun("outputs", 0.0, [Change("outputs", "remove", (name,), (), "feeds no output") for name in pruned]),
        PassRun("pinning", 0.0, pinned_away),
    ]
    return PinnedModel(loaded, model, profiles, sections, computes_as_file, as_read, file_nodes, steps)

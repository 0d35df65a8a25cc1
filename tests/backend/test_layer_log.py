"""The `Layers:` parser on real TensorRT-RTX output: a capture of the demo build kept in
tests/data, and the log of a build made in the test itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import models
from trtc.backend.layer_log import parse_builder_log, parse_inspector_json, parse_record
from trtc.passes import node_origins, run_passes, select_passes
from trtc.report.fusion import fusion_map
from trtc.spec.model import FusionSpec

DATA = Path(__file__).resolve().parents[1] / "data"


def test_demo_capture_gives_kernels_fusions_and_bindings():
    info = parse_builder_log(["Original: 20 layers", (DATA / "demo-layers-message.txt").read_text()])
    names = {k.name: k for k in info.kernels}
    assert len(info.kernels) == 23
    assert len(info.compute_kernels) == 16  # 7 signal/wait layers order the streams
    stem = names["__myl_CorrMulAddRelu_myl0_2"]
    assert stem.layer_type == "runtime_fusion"
    assert stem.onnx_nodes == ("stem.conv", "stem.bn", "stem.relu")
    assert stem.precision == "Float"
    assert [len(t.dims) for t in stem.constants] == [4, 4, 4]
    assert names["res.b.conv_myl0_5"].tactic == "__myelin_CASK_STUB"
    assert names["__myl_MulAddAddReluTran_myl0_6"].onnx_nodes == ("res.b.bn", "res.add", "res.relu")
    images = info.bindings[0]
    assert (images.name, images.mode, images.dtype, images.dims) == ("images", "Input", "Float", (-1, 3, 64, 64))
    assert images.profiles[0].min == (1, 3, 64, 64) and images.profiles[0].max == (32, 3, 64, 64)
    assert [b.name for b in info.bindings[1:]] == ["head0.out", "head1.out", "head2.out", "softmax.out"]
    assert info.optimizer_stages == (("Original", 20),)


def test_record_parser_handles_nested_lists_and_empty_values():
    record = parse_record(
        "Name: k, LayerType: kgen, Inputs: [ { Name: a, Dimensions: [-1,4], Datatype: Half, Format: (Linear) Row major }],"
        " Constants: [], TacticName: , StreamId: 2, Metadata: [ONNX Layer: /m/Conv]\x1f[ONNX Layer: /m/Relu]"
    )
    assert record["Inputs"] == [
        {"Name": "a", "Dimensions": [-1, 4], "Datatype": "Half", "Format": "(Linear) Row major"}
    ]
    assert record["Constants"] == [] and record["TacticName"] == "" and record["StreamId"] == "2"


def test_no_layers_message_means_no_engine_info():
    assert parse_builder_log(["Original: 3 layers", "Engine generation completed"]) is None


def test_inspector_json_in_full_tensorrt_form():
    # The documented form of IEngineInspector JSON with DETAILED verbosity (trtexec --exportLayerInfo).
    text = """{"Layers": [{"Name": "/conv/Conv + /relu/Relu", "LayerType": "CaskConvolution",
      "Inputs": [{"Name": "x", "Location": "Device", "Dimensions": [1,3,8,8], "Format/Datatype": "Row major linear FP16 format"}],
      "Outputs": [{"Name": "y", "Location": "Device", "Dimensions": [1,8,8,8],
                   "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
      "Metadata": "[ONNX Layer: /conv/Conv]\\u001f[ONNX Layer: /relu/Relu]", "TacticName": "sm80_xmma", "StreamId": 0}],
      "Bindings": ["x", "y"]}"""
    info = parse_inspector_json(text)
    kernel = info.kernels[0]
    assert kernel.onnx_nodes == ("/conv/Conv", "/relu/Relu")
    assert kernel.precision == "Half"
    assert [b.name for b in info.bindings] == ["x", "y"]


def _capture_fusion(capture: str, model, added: dict[str, str]) -> dict:
    """The fusion map of a real capture against the model's node names after trtc's passes. The
    captures are the `Layers:` messages of `trtc build` (TensorRT-RTX 1.7.1, sm 8.9, max_batch 8,
    default passes, fp16) of `tests.models.mobilenet_like()` and `odd_names()`."""
    nodes = {node.name: node.op_type for node in model.graph.node}
    origins = node_origins(run_passes(model, select_passes(FusionSpec())))
    return fusion_map(parse_builder_log([(DATA / capture).read_text()]), nodes, origins, added)


def test_metadata_with_a_suffix_after_the_last_group():
    """TensorRT-RTX runs a 1x1 conv in FP16 as a GEMM and writes `[ONNX Layer: ...]__gemm_from_conv1x1`."""
    fusion = _capture_fusion(
        "mobilenet-fp16-layers-message.txt", models.mobilenet_like(), {"x/to_low": "Cast", "y/to_fp32": "Cast"}
    )
    gemm = next(k for k in fusion["kernels"] if k["type"] == "gemm")
    assert gemm["onnx_nodes"] == ["Conv.8", "BatchNormalization.8"]
    assert all(k["onnx_nodes"] for k in fusion["kernels"] if k["type"] not in ("shape_call", "kgen"))
    assert fusion["unknown_metadata_nodes"] == []


def test_metadata_of_node_names_that_look_like_its_syntax():
    """Names with `+`, `]`, `[ONNX Layer: `, `, Metadata: ` and a newline (which splits the log line)."""
    fusion = _capture_fusion(
        "odd-names-fp16-layers-message.txt",
        models.odd_names(),
        {"x/to_low": "Cast", "y/to_fp32": "Cast", "s/to_fp32": "Cast", "z/to_fp32": "Cast"},
    )
    assert [k["built_nodes"] for k in fusion["kernels"] if k["built_nodes"]] == [
        ["x/to_low", "conv a+b+bn]x", "relu [0]"],
        ["conv a+b+bn]x", "relu [0]"],
        ["line\nbreak"],
        ["[ONNX Layer: evil]", "z/to_fp32", "sig, Metadata: z", "s/to_fp32"],
        ["y/to_fp32"],
    ]
    assert "line\nbreak_myl0_3" in [k["name"] for k in fusion["kernels"]]
    assert fusion["unknown_metadata_nodes"] == []


@pytest.mark.parametrize(
    "metadata, nodes, origins, covered",
    [
        ("[ONNX Layer: a+b]", ["a", "b"], {}, ["a", "b"]),  # one group naming two nodes
        ("[ONNX Layer: a + b]", ["a", "b"], {}, ["a", "b"]),
        ("[ONNX Layer: a+b]", ["a", "b", "a+b"], {}, ["a+b"]),  # a node named `a+b` is that node, not two
        ("[ONNX Layer: a+b]__gemm_from_conv1x1", ["a", "b"], {"a+b": ("a", "b")}, ["a", "b"]),  # a pass's product
        ("[ONNX Layer: a][ONNX Layer: b]", ["a", "b"], {}, ["a", "b"]),
        ("[ONNX Layer: a]\x1e[ONNX Layer: b]", ["a", "b"], {}, ["a", "b"]),
        ("[ONNX Layer: x]y]\x1f[ONNX Layer: z]__suffix", ["x", "x]y", "z"], {}, ["x]y", "z"]),
        ("[ONNX Layer: a]\x1f[ONNX Layer: b, Metadata: c]", ["a", "b, Metadata: c"], {}, ["a", "b, Metadata: c"]),
        # a TensorRT tag between groups (the FP16 PP-OCR classifier: `[ONNX Layer: Conv@4+Add@2]__gemm_from_conv1x1[ONNX Layer: Mul@1]`)
        ("[ONNX Layer: a+b]__gemm_from_conv1x1[ONNX Layer: c]", ["a", "b", "c"], {}, ["a", "b", "c"]),
        ("[ONNX Layer: a]__gemm_from_conv1x1\x1f[ONNX Layer: c]__x", ["a", "c"], {}, ["a", "c"]),
        ("[ONNX Layer: a]__tag[ONNX Layer: b]", ["a", "a]__tag[ONNX Layer: b"], {}, ["a]__tag[ONNX Layer: b"]),
    ],
)
def test_metadata_forms(metadata, nodes, origins, covered):
    info = parse_builder_log(
        [f"Layers:\nName: k, LayerType: kgen, Inputs: [], Outputs: [], TacticName: , StreamId: 0, Metadata: {metadata}"]
    )
    fusion = fusion_map(info, dict.fromkeys(nodes, "Relu"), origins)
    assert fusion["kernels"][0]["onnx_nodes"] == covered
    assert fusion["unknown_metadata_nodes"] == []


def test_a_name_the_model_lacks_is_reported_not_lost():
    info = parse_builder_log(
        [
            "Layers:\nName: k, LayerType: gemm, Inputs: [], Outputs: [], TacticName: , StreamId: 0, "
            "Metadata: [ONNX Layer: a]\x1f[ONNX Layer: ghost]__gemm_from_conv1x1"
        ]
    )
    fusion = fusion_map(info, {"a": "Conv"})
    assert fusion["kernels"][0]["built_nodes"] == ["a", "ghost"]
    assert fusion["unknown_metadata_nodes"] == ["ghost"]

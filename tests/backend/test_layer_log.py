"""The `Layers:` parser on real TensorRT-RTX output: a capture of the demo build kept in
tests/data, and the log of a build made in the test itself."""

from __future__ import annotations

from pathlib import Path

from trtc.backend.layer_log import parse_builder_log, parse_inspector_json, parse_record

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
    record = parse_record("Name: k, LayerType: kgen, Inputs: [ { Name: a, Dimensions: [-1,4], Datatype: Half, Format: (Linear) Row major }],"
                          " Constants: [], TacticName: , StreamId: 2, Metadata: [ONNX Layer: /m/Conv]\x1f[ONNX Layer: /m/Relu]")
    assert record["Inputs"] == [{"Name": "a", "Dimensions": [-1, 4], "Datatype": "Half", "Format": "(Linear) Row major"}]
    assert record["Constants"] == [] and record["TacticName"] == "" and record["StreamId"] == "2"


def test_no_layers_message_means_no_engine_info():
    assert parse_builder_log(["Original: 3 layers", "Engine generation completed"]) is None


def test_inspector_json_in_full_tensorrt_form():
    # The documented form of IEngineInspector JSON with DETAILED verbosity (trtexec --exportLayerInfo).
    text = """{"Layers": [{"Name": "/conv/Conv + /relu/Relu", "LayerType": "CaskConvolution",
      "Inputs": [{"Name": "x", "Location": "Device", "Dimensions": [1,3,8,8], "Format/Datatype": "Row major linear FP16 format"}],
      "Outputs": [{"Name": "y", "Location": "Device", "Dimensions": [1,8,8,8], "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
      "Metadata": "[ONNX Layer: /conv/Conv]\\u001f[ONNX Layer: /relu/Relu]", "TacticName": "sm80_xmma", "StreamId": 0}],
      "Bindings": ["x", "y"]}"""
    info = parse_inspector_json(text)
    kernel = info.kernels[0]
    assert kernel.onnx_nodes == ("/conv/Conv", "/relu/Relu")
    assert kernel.precision == "Half"
    assert [b.name for b in info.bindings] == ["x", "y"]

"""The engine inspector: TensorRT's own JSON description of a built plan. It needs a GPU that the
installed TensorRT supports, because the plan must be deserialized first."""

from __future__ import annotations

from trtc.backend.engine_info import EngineInfo
from trtc.backend.layer_log import parse_inspector_json
from trtc.backend.runtime import load_engine
from trtc.backend.trt_import import TensorRT


def inspect_plan(trt: TensorRT, plan: bytes | memoryview) -> EngineInfo:
    """Deserialize `plan` and read its layer information; GpuUnavailableError where no GPU can."""
    _runtime, engine = load_engine(trt, plan)
    inspector = engine.create_engine_inspector()
    return parse_inspector_json(inspector.get_engine_information(trt.module.LayerInformationFormat.JSON))

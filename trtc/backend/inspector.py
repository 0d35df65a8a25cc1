"""The engine inspector: TensorRT's own JSON description of a built plan. It needs a GPU that the
installed TensorRT supports, because the plan must be deserialized first."""

from __future__ import annotations

from trtc.backend.engine_info import EngineInfo
from trtc.backend.layer_log import parse_inspector_json
from trtc.backend.lifetime import TensorRTScope
from trtc.backend.runtime import load_engine
from trtc.backend.trt_import import TensorRT


def inspect_plan(trt: TensorRT, plan: bytes | memoryview) -> EngineInfo:
    """Deserialize `plan` and read its layer information; GpuUnavailableError where no GPU can."""
    with TensorRTScope() as scope:
        return _inspect_in_scope(scope, trt, plan)


def _inspect_in_scope(scope: TensorRTScope, trt: TensorRT, plan: bytes | memoryview) -> EngineInfo:
    engine = load_engine(scope, trt, plan)
    inspector = scope.keep(engine.create_engine_inspector())
    return parse_inspector_json(inspector.get_engine_information(trt.module.LayerInformationFormat.JSON))

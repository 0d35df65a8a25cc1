"""The engine inspector: TensorRT's own JSON description of a built plan. It needs a GPU that the
installed TensorRT supports, because the plan must be deserialized first."""

from __future__ import annotations

from trtc.backend.engine_info import EngineInfo
from trtc.backend.layer_log import parse_inspector_json
from trtc.backend.trt_import import TensorRT
from trtc.backend.trt_logger import capturing_logger, last_error
from trtc.errors import GpuUnavailableError


def inspect_plan(trt: TensorRT, plan: bytes | memoryview) -> EngineInfo:
    """Deserialize `plan` and read its layer information; GpuUnavailableError where no GPU can."""
    lib = trt.module
    logger = capturing_logger(lib)
    runtime = lib.Runtime(logger)
    try:
        engine = runtime.deserialize_cuda_engine(plan)
    except Exception as exc:  # noqa: BLE001 - bindings raise plain RuntimeError/TypeError here
        engine, logger.messages = None, [*logger.messages, ("ERROR", str(exc))]
    if engine is None:
        raise GpuUnavailableError(
            f"{trt.name} cannot load the plan on this machine: it needs a GPU it supports "
            f"(TensorRT-RTX: RTX GPUs, compute capability 7.5 to 12.x; full TensorRT: the GPU the plan was built for); "
            f"TensorRT said: {last_error(logger.messages)}"
        )
    inspector = engine.create_engine_inspector()
    text = inspector.get_engine_information(lib.LayerInformationFormat.JSON)
    return parse_inspector_json(text)

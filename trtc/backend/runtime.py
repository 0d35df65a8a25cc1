"""Run a plan on the GPU: deserialize, create an execution context, copy inputs host -> device,
enqueue, copy outputs back, synchronize (the runtime side of the design notes).

Needs a GPU that the installed TensorRT supports and `cuda-python` for device memory. Where there
is none, `GpuUnavailableError` says so before anything else happens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from trtc.backend.lifetime import TensorRTScope
from trtc.backend.trt_import import TensorRT
from trtc.backend.trt_logger import capturing_logger, last_error
from trtc.errors import BackendUnavailableError, GpuUnavailableError, UsageError


@dataclass
class RunResult:
    outputs: dict[str, np.ndarray]
    input_shapes: dict[str, tuple[int, ...]]
    latencies_ms: list[float]


def load_engine(scope: TensorRTScope, trt: TensorRT, plan: bytes):
    """The deserialized engine; it and its runtime belong to `scope`."""
    logger = scope.keep(capturing_logger(trt.module))
    runtime = scope.keep(trt.module.Runtime(logger))
    try:
        engine = scope.keep(runtime.deserialize_cuda_engine(plan))
    except Exception as exc:  # noqa: BLE001 - the bindings raise plain exceptions here
        engine, logger.messages = None, [*logger.messages, ("ERROR", str(exc))]
    if engine is None:
        raise GpuUnavailableError(
            f"{trt.name} cannot load the plan on this machine: it needs a GPU it supports "
            f"(TensorRT-RTX: RTX GPUs, compute capability 7.5 to 12.x; full TensorRT: the GPU the plan was built for); "
            f"TensorRT said: {last_error(logger.messages)}"
        )
    return engine


def run_plan(trt: TensorRT, plan: bytes, feeds: dict[str, np.ndarray], iterations: int = 1) -> RunResult:
    """Inputs missing from `feeds` get random values at the first profile's opt shape."""
    with TensorRTScope() as scope:
        return _run_in_scope(scope, trt, plan, feeds, iterations)


def _run_in_scope(
    scope: TensorRTScope, trt: TensorRT, plan: bytes, feeds: dict[str, np.ndarray], iterations: int
) -> RunResult:
    engine = load_engine(scope, trt, plan)
    cudart = _cuda_runtime()
    lib = trt.module
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == lib.TensorIOMode.INPUT]
    unknown = sorted(set(feeds) - set(inputs))
    if unknown:
        raise UsageError(
            f"--input {unknown[0]}: the engine has no input of that name; its inputs are: {', '.join(inputs)}"
        )
    context = scope.keep(engine.create_execution_context())
    host: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    for name in inputs:
        dtype = np.dtype(lib.nptype(engine.get_tensor_dtype(name)))
        array = feeds.get(name)
        if array is None:
            shape = tuple(engine.get_tensor_profile_shape(name, 0)[1])
            array = rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else np.zeros(shape, dtype)
        host[name] = np.ascontiguousarray(array, dtype=dtype)
        if not context.set_input_shape(name, host[name].shape):
            raise UsageError(f"--input {name}: shape {host[name].shape} is outside the engine's profile")
    for name in names:
        if name not in host:
            host[name] = np.empty(
                tuple(context.get_tensor_shape(name)), np.dtype(lib.nptype(engine.get_tensor_dtype(name)))
            )
    stream = _check(cudart.cudaStreamCreate())
    device = {name: _check(cudart.cudaMalloc(max(array.nbytes, 1))) for name, array in host.items()}
    try:
        for name in names:
            context.set_tensor_address(name, int(device[name]))
        for name in inputs:
            _check(
                cudart.cudaMemcpyAsync(
                    device[name],
                    host[name].ctypes.data,
                    host[name].nbytes,
                    cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                    stream,
                )
            )
        latencies = []
        for _ in range(max(iterations, 1)):
            started = time.perf_counter()
            context.execute_async_v3(int(stream))
            _check(cudart.cudaStreamSynchronize(stream))
            latencies.append((time.perf_counter() - started) * 1e3)
        outputs = [n for n in names if n not in inputs]
        for name in outputs:
            _check(
                cudart.cudaMemcpyAsync(
                    host[name].ctypes.data,
                    device[name],
                    host[name].nbytes,
                    cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                    stream,
                )
            )
        _check(cudart.cudaStreamSynchronize(stream))
    finally:
        for pointer in device.values():
            cudart.cudaFree(pointer)
        cudart.cudaStreamDestroy(stream)
    return RunResult({n: host[n] for n in outputs}, {n: host[n].shape for n in inputs}, latencies)


def _cuda_runtime():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        raise BackendUnavailableError(
            "running a plan needs device memory from cuda-python: `pip install 'cuda-python>=13'`"
        ) from None
    return cudart


def _check(result):
    """cuda-python returns (error, value...) tuples; any error is a GPU problem."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise GpuUnavailableError(f"CUDA call failed: {error}")
    return values[0] if len(values) == 1 else None

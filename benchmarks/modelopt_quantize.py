"""ModelOpt's ONNX quantizer as a peer column of benchmarks/real_int8.py, given the calibration
tensors trtc reads (one `.npy` file per view, batch 1). ModelOpt is optional: it is not one of
trtc's dependencies, and the column is skipped when `modelopt.onnx.quantization` cannot be imported
(`pip install "nvidia-modelopt[onnx]"` brings it, with torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

METHODS = ("entropy", "max")  # ModelOpt's INT8 calibration methods


def unavailable_reason() -> str | None:
    """Why ModelOpt's ONNX quantizer cannot be imported here, or None when it can."""
    try:
        import modelopt.onnx.quantization  # noqa: F401
    except ImportError as error:  # also a dependency of it missing, e.g. torch
        return str(error)
    return None


def calibration_tensors(folder: Path, input_name: str) -> dict[str, np.ndarray]:
    """The views in `folder`, in file-name order (the order trtc and onnxruntime read them), as the
    one array per input that ModelOpt splits back into calibration steps."""
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise ValueError(f"no .npy calibration tensors in {folder}")
    return {input_name: np.concatenate([np.load(path) for path in files])}


def calibration_shapes(tensors: dict[str, np.ndarray]) -> str:
    """ModelOpt's shape of one calibration step ("name:1x3x224x224,..."): one view a step, as trtc and
    onnxruntime calibrate; ModelOpt would otherwise read the step from the model's (dynamic) input."""
    return ",".join(f"{name}:{'x'.join(map(str, [1, *array.shape[1:]]))}" for name, array in tensors.items())


def quantize(model: str, calibration: str, output: str, method: str, input_name: str) -> None:
    """Quantizes `model` to INT8 Q/DQ at `output`, calibrating on the CPU; the layers ModelOpt leaves
    out of INT8 stay in FP32 (its default is FP16), as onnxruntime's `quantize_static` keeps them."""
    from modelopt.onnx.quantization import quantize as modelopt_quantize

    tensors = calibration_tensors(Path(calibration), input_name)
    modelopt_quantize(
        onnx_path=model,
        quantize_mode="int8",
        calibration_data=tensors,
        calibration_shapes=calibration_shapes(tensors),
        calibration_method=method,
        calibration_eps=["cpu"],  # no GPU here; ModelOpt's default tries TensorRT and CUDA first
        high_precision_dtype="fp32",
        output_path=output,
        log_level="WARNING",
    )

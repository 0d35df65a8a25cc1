"""trtc: a model-to-engine compiler for NVIDIA TensorRT."""

__version__ = "0.1.0"

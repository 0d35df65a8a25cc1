"""Make-style incremental builds: the fingerprint of what decides a plan, the up-to-date check,
Make dependency files and the lock that keeps two processes from writing one plan.

Nothing here imports onnx, onnxruntime or TensorRT: a no-op `trtc build` must stay fast."""

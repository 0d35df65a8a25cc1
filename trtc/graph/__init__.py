"""ONNX graph handling: loading, naming, pruning, shapes and profiles."""

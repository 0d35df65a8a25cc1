"""Reduced precision: FP16/BF16 autocast, INT8/FP8 calibration with Q/DQ, and the accuracy gate."""

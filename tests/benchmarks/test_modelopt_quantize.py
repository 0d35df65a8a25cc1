"""What benchmarks/real_int8.py hands ModelOpt: trtc's calibration tensors, unchanged and in trtc's
order, with one view a calibration step (no ModelOpt needed)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.modelopt_quantize import calibration_shapes, calibration_tensors


def test_views_are_stacked_in_file_name_order_unchanged(tmp_path):
    views = {
        name: np.full((1, 3, 4, 5), value, np.float32) for name, value in [("view10", 2), ("view02", 1), ("view00", 0)]
    }
    for name, view in views.items():
        np.save(tmp_path / f"{name}.npy", view)
    (tmp_path / "notes.txt").write_text("not a tensor")

    tensors = calibration_tensors(tmp_path, "images")

    assert list(tensors) == ["images"]
    assert tensors["images"].shape == (3, 3, 4, 5)
    assert tensors["images"].dtype == np.float32
    assert tensors["images"][:, 0, 0, 0].tolist() == [0, 1, 2]


def test_one_view_is_one_calibration_step():
    tensors = {"x": np.zeros((32, 3, 640, 640), np.float32), "scale:0": np.zeros((32, 2), np.float32)}

    assert calibration_shapes(tensors) == "x:1x3x640x640,scale:0:1x2"


def test_an_empty_folder_names_the_folder(tmp_path):
    with pytest.raises(ValueError, match=f"no .npy calibration tensors in {tmp_path}"):
        calibration_tensors(tmp_path, "x")

"""Calibration/accuracy data sources: every mistake is one line that names the file and the fix."""

import numpy as np
import pytest

from tests import models
from trtc.errors import SpecError
from trtc.graph.profiles import model_inputs
from trtc.precision.data import SampleSource

INPUTS = model_inputs(models.conv_bn_relu())


def source(folder, where="data"):
    return SampleSource(where, "precision.calibration.data", INPUTS, folder)


def test_streams_batches_across_files_and_holds_out(tmp_path):
    (tmp_path / "data").mkdir()
    for index in range(3):
        np.save(tmp_path / "data" / f"{index}.npy", np.full((2, 3, 16, 16), index, np.float32))

    def values(batches):
        return [float(v) for v in np.concatenate([b["x"] for b in batches])[:, 0, 0, 0]]

    data = source(tmp_path)
    batches = list(data.batches(batch=4, limit=5, part="calibration"))
    assert [b["x"].shape[0] for b in batches] == [4, 1]
    assert values(batches) == [0, 0, 1, 2, 2]  # every 4th sample (the second 1) is held out
    assert values(data.batches(batch=4, limit=5, part="held out")) == [1]
    assert values(data.batches(batch=2, limit=3)) == [0, 0, 1]
    assert (data.count("held out", 8), data.count("all", 4)) == (1, 4)


@pytest.mark.parametrize(
    "setup,message",
    [
        (
            lambda d: None,
            "precision.calibration.data: folder not found: {d}/data (paths are relative to the spec's folder)",
        ),
        (
            lambda d: (d / "data").mkdir(),
            "precision.calibration.data: {d}/data holds no .npy, .npz or image files; put calibration samples there",
        ),
    ],
)
def test_missing_or_empty_folder(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(SpecError) as caught:
        source(tmp_path)
    assert caught.value.message == message.format(d=tmp_path)


@pytest.mark.parametrize(
    "array,message",
    [
        (np.zeros((2, 3, 8, 8), np.float32), "input 'x' has shape [2, 3, 8, 8]; the model wants x[N,3,16,16] float32"),
        (np.zeros((2, 3, 16, 16), np.int64), "input 'x' is int64, the model wants float32; convert the data"),
        (np.full((1, 3, 16, 16), np.nan, np.float32), "input 'x' holds NaN or Inf values; clean the data"),
    ],
)
def test_bad_arrays_name_the_file(tmp_path, array, message):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "bad.npy", array)
    with pytest.raises(SpecError) as caught:
        list(source(tmp_path).batches(4, 10))
    assert caught.value.message == f"precision.calibration.data: {tmp_path}/data/bad.npy: {message}"


def test_npz_single_samples_and_a_python_generator(tmp_path):
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "a.npz", x=np.ones((3, 16, 16), np.float32))
    assert list(source(tmp_path).batches(4, 10))[0]["x"].shape == (1, 3, 16, 16)
    (tmp_path / "my_samples.py").write_text(
        "import numpy as np\ndef make():\n    for i in range(5):\n        yield {'x': np.full((1, 3, 16, 16), i, np.float32)}\n"
    )
    generated = source(tmp_path, "python:my_samples:make")
    assert [b["x"].shape[0] for b in generated.batches(2, 5)] == [2, 2, 1]
    with pytest.raises(SpecError, match="cannot import nothere"):
        source(tmp_path, "python:nothere:make")

"""Which files in a data folder are samples. Kept free of numpy: the up-to-date check reads it."""

from __future__ import annotations

from pathlib import Path

from trtc.errors import SpecError
from trtc.inputs import regular_file

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"}
SAMPLE_SUFFIXES = {".npy", ".npz", *IMAGE_SUFFIXES}


def sample_files(folder: Path) -> list[Path]:
    """The samples in `folder`, in the order calibration reads them. A sample that is no regular
    file (a FIFO, a link to a device) is refused by name: hashing or reading it never ends."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES)
    for path in files:
        regular_file(path, f"data folder {folder}", SpecError)
    return files

"""Which files in a data folder are samples. Kept free of numpy: the up-to-date check reads it."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm"}
SAMPLE_SUFFIXES = {".npy", ".npz", *IMAGE_SUFFIXES}


def sample_files(folder: Path) -> list[Path]:
    """The samples in `folder`, in the order calibration reads them."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES)

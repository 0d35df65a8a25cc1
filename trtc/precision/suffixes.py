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


def sample_folder(where: str, key: str, base: Path) -> tuple[Path, list[Path], str]:
    """The folder `where` names (relative to `base`), its samples and their one kind ("image",
    ".npy" or ".npz"); a spec error under `key` when it is missing, empty or mixed."""
    folder = (base / where).resolve()
    if not folder.is_dir():
        raise SpecError(f"{key}: folder not found: {folder} (paths are relative to the spec's folder)")
    files = sample_files(folder)
    if not files:
        raise SpecError(f"{key}: {folder} holds no .npy, .npz or image files; put calibration samples there")
    kinds = {"image" if p.suffix.lower() in IMAGE_SUFFIXES else p.suffix.lower() for p in files}
    if len(kinds) > 1:
        raise SpecError(f"{key}: {folder} mixes {', '.join(sorted(kinds))} files; keep one kind per folder")
    return folder, files, kinds.pop()

"""Reading what users give, before trusting it: a FIFO or a device named as a file would hang a
read or never end, and an array file's header can claim far more data than the file holds (or
than memory can take). Sizes are checked against the file and a memory budget before anything is
allocated; every refusal is one line naming the file."""

from __future__ import annotations

import os
import stat
import zipfile
from math import prod
from pathlib import Path

from trtc.errors import SpecError, UsageError

# One data file (a calibration or accuracy sample file) may not need more memory than this.
ARRAY_BUDGET_BYTES = 2 << 30
# Images are decoded whole: 64 megapixels is far above any network input and far below a bomb.
IMAGE_PIXEL_LIMIT = 64_000_000
# How a TensorRT plan starts (TensorRT's "ftrt", TensorRT-RTX's "vtrt"): a plan given where a
# model or a spec goes is named for what it is.
PLAN_MAGIC = (b"ftrt", b"vtrt")


def regular_file(path: Path, what: str, error=UsageError) -> Path:
    """`path` when it is a regular file (links followed); else one line saying what it is."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{what}: file not found: {path}") from None
    except OSError as exc:
        raise error(f"{what}: cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise error(f"{what}: {path} is a folder; name a file")
    if not stat.S_ISREG(mode):
        raise error(f"{what}: {path} is not a regular file (a FIFO, device or socket); name a file")
    return path


def check_array_file(path: Path, key: str) -> None:
    """Refuse an .npy/.npz whose declared arrays do not fit the file or the memory budget."""
    regular_file(path, key, SpecError)
    if path.suffix.lower() == ".npz":
        _check_npz(path, key)
        return
    with open(path, "rb") as stream:
        declared = _declared_bytes(stream, path, key)
        available = os.fstat(stream.fileno()).st_size - stream.tell()
    _check_size(declared, available, path, key)


def _check_npz(path: Path, key: str) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SpecError(f"{key}: {path} is not a valid .npz archive ({exc})") from None
    with archive:
        total = 0
        for member in archive.infolist():
            total += member.file_size  # what it inflates to, as the archive declares it
            if total > ARRAY_BUDGET_BYTES:
                raise SpecError(
                    f"{key}: {path} inflates to more than {ARRAY_BUDGET_BYTES >> 30} GiB; split it into smaller sample files"
                )
            if member.filename.endswith(".npy"):
                with archive.open(member) as stream:
                    declared = _declared_bytes(stream, path, key, member.filename)
                    header = stream.tell() if stream.seekable() else 0
                _check_size(declared, member.file_size - header, path, key, member.filename)


def _declared_bytes(stream, path: Path, key: str, member: str = "") -> int:
    import numpy as np  # here: the spec loader imports this module, and a no-op build needs no numpy

    where = f"{path}{f' ({member})' if member else ''}"
    try:
        version = np.lib.format.read_magic(stream)
        shape, _, dtype = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )(stream)
    except (ValueError, OSError, SyntaxError, TypeError) as exc:
        raise SpecError(f"{key}: {where} is not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise SpecError(f"{key}: {where} holds Python objects, which trtc does not load; save numeric arrays")
    return prod(shape) * dtype.itemsize


def _check_size(declared: int, available: int, path: Path, key: str, member: str = "") -> None:
    where = f"{path}{f' ({member})' if member else ''}"
    if declared > ARRAY_BUDGET_BYTES:
        raise SpecError(
            f"{key}: {where} declares {declared:,} bytes of array data, more than trtc loads from one file "
            f"({ARRAY_BUDGET_BYTES >> 30} GiB); split it into smaller sample files"
        )
    if declared > available:
        raise SpecError(
            f"{key}: {where} declares {declared:,} bytes of array data but holds {max(available, 0):,}; "
            "the file is truncated or damaged: save it again"
        )

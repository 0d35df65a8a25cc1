"""Where calibration and accuracy samples come from, streamed in batches (never all in memory):

- a folder of `.npy` files (single-input models; one sample or a batch each) or `.npz` files
  (arrays named by input);
- a folder of images (`.jpg`, `.png`, ...) with declared preprocessing (needs Pillow);
- `python:module:function`, a generator the user writes, yielding dicts of arrays: this runs
  the user's code, so it is opt-in by its prefix.

Every problem (missing or empty folder, wrong shape or dtype, NaN/Inf) is one line that names the
file and the fix.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from trtc.errors import SpecError
from trtc.graph.profiles import ModelInput
from trtc.incremental.fingerprint import data_fingerprint
from trtc.inputs import check_array_file, regular_file
from trtc.precision.generator_files import generator_files, generator_target
from trtc.precision.images import load_image
from trtc.precision.suffixes import sample_folder

HOLD_OUT_EVERY = 4  # without accuracy.data, every 4th calibration sample is held out to measure accuracy on


class SampleSource:
    def __init__(self, where: str, key: str, inputs: list[ModelInput], base: Path, preprocess: dict | None = None):
        self.key, self.inputs, self.preprocess = key, {i.name: i for i in inputs}, preprocess or {}
        self.where, self.base = where, base
        self.generator = None
        if where.startswith("python:"):
            self.generator = _load_generator(where.removeprefix("python:"), key, base)
            self.files, self.description = [], f"generator {where.removeprefix('python:')}"
            return
        folder, self.files, kind = sample_folder(where, key, base)
        if kind == ".npy" and len(self.inputs) != 1:
            raise SpecError(
                f"{key}: .npy files need a single-input model; this one has {', '.join(self.inputs)}: use .npz files with arrays named by "
                "input"
            )
        if kind == "image" and len(self.inputs) != 1:
            raise SpecError(f"{key}: images need a single-input model; use .npz files with arrays named by input")
        self.description = f"{len(self.files)} {kind.lstrip('.')} file(s) in {folder}"

    def fingerprint(self) -> str:
        """Hash of the file names and contents (of a generator's module files): keys the cache,
        computed as the build fingerprint computes it."""
        return data_fingerprint(self.where, self.base)[0]

    def batches(self, batch: int, limit: int, part: str = "all") -> Iterator[dict[str, np.ndarray]]:
        """Batches of up to `batch` samples, `limit` in all, from `part`: "all", "held out" (every
        HOLD_OUT_EVERY-th sample, kept for accuracy) or "calibration" (the others)."""
        pending: list[dict[str, np.ndarray]] = []
        taken = 0
        for index, sample in enumerate(self._samples() if limit > 0 else ()):
            if part != "all" and (index % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1) != (part == "held out"):
                continue
            pending.append(sample)
            taken += 1
            if len(pending) == batch or taken == limit:
                yield _stack(pending)
                pending = []
            if taken == limit:
                return
        if pending:
            yield _stack(pending)

    def count(self, part: str, up_to: int) -> int:
        """How many samples `part` holds, counted up to `up_to` (reads no further)."""
        return sum(batch_samples(b) for b in self.batches(up_to, up_to, part))

    def _samples(self) -> Iterator[dict[str, np.ndarray]]:
        """One sample at a time (batch axis of size 1), checked."""
        for origin, arrays in self._raw():
            checked = {name: self._check(name, np.asarray(value), origin) for name, value in arrays.items()}
            missing = set(self.inputs) - set(checked)
            if missing:
                raise SpecError(
                    f"{self.key}: {origin} has no array for input '{sorted(missing)[0]}'; name the arrays by input"
                )
            for index in range(batch_samples(checked)):
                yield {name: value[index : index + 1] for name, value in checked.items()}

    def _raw(self) -> Iterator[tuple[str, dict]]:
        if self.generator is not None:
            for index, item in enumerate(self.generator()):
                single = next(iter(self.inputs))
                yield f"generator item {index}", item if isinstance(item, dict) else {single: item}
            return
        single = next(iter(self.inputs))
        for path in self.files:
            suffix = path.suffix.lower()
            if suffix in (".npy", ".npz"):
                check_array_file(path, self.key)  # sizes before allocating, and no FIFO or device
            else:
                regular_file(path, self.key, SpecError)
            try:
                if suffix == ".npy":
                    yield str(path), {single: np.load(path, allow_pickle=False)}
                elif suffix == ".npz":
                    with np.load(path, allow_pickle=False) as archive:
                        yield str(path), {name: archive[name] for name in archive.files if name in self.inputs}
                else:
                    yield str(path), {single: load_image(path, self.preprocess, self.inputs[single], self.key)}
            except (ValueError, OSError) as exc:
                raise SpecError(f"{self.key}: cannot read {path}: {exc}") from None

    def _check(self, name: str, value: np.ndarray, origin: str) -> np.ndarray:
        item = self.inputs.get(name)
        if item is None:
            return value
        expected = np.dtype(item.dtype)
        if value.dtype.kind != expected.kind and not (value.dtype.kind in "iu" and expected.kind in "iu"):
            raise SpecError(
                f"{self.key}: {origin}: input '{name}' is {value.dtype}, the model wants {expected}; convert the data"
            )
        if value.ndim == len(item.dims) - 1:
            value = value[None]  # one sample without its batch axis
        if value.ndim != len(item.dims) or any(
            isinstance(d, int) and d != s for d, s in zip(item.dims[1:], value.shape[1:])
        ):
            raise SpecError(
                f"{self.key}: {origin}: input '{name}' has shape {list(value.shape)}; the model wants {item.describe()}"
            )
        if expected.kind == "f" and not np.isfinite(value).all():
            raise SpecError(f"{self.key}: {origin}: input '{name}' holds NaN or Inf values; clean the data")
        return value.astype(expected, copy=False)


def _stack(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([s[name] for s in samples]) for name in samples[0]}


def _load_generator(target: str, key: str, base: Path):
    module_name, function = generator_target(target, key)
    _forget_modules(generator_files(target, base))
    sys.path.insert(0, str(base))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"{key}: cannot import {module_name} (searched the spec's folder too): {exc}") from None
    finally:
        sys.path.remove(str(base))
    generator = getattr(module, function, None)
    if not callable(generator):
        raise SpecError(f"{key}: {module_name} has no function {function}")
    return generator


def _forget_modules(files: list[Path]) -> None:
    """Drop already imported modules made of the generator's files, so the code that runs is the
    code the cache key hashed (a second build in one process must not reuse an edited module)."""
    paths = {os.path.realpath(path) for path in files}
    names = {os.path.basename(path) for path in paths}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and os.path.basename(file) in names and os.path.realpath(file) in paths:
            del sys.modules[name]
    importlib.invalidate_caches()


def batch_samples(feeds: dict[str, np.ndarray]) -> int:
    """How many samples a batch holds; a batch of a model without inputs ({}) counts as one."""
    return len(next(iter(feeds.values()))) if feeds else 1


def samples_between(
    batches: Iterable[dict[str, np.ndarray]], start: int, stop: int | None
) -> Iterator[dict[str, np.ndarray]]:
    """The batches cut to samples start..stop (stop None: to the end), whatever their batch
    size."""
    position = 0
    for feeds in batches:
        count = batch_samples(feeds)
        low, high = max(start - position, 0), count if stop is None else min(stop - position, count)
        position += count
        if low < high:
            yield {name: value[low:high] for name, value in feeds.items()}
        if stop is not None and position >= stop:
            return


def cut_at(batches: Iterable[dict[str, np.ndarray]], boundary: int) -> Iterator[tuple[dict[str, np.ndarray], bool]]:
    """The batches, the one spanning sample `boundary` cut in two, each with whether its samples
    come before `boundary`."""
    position = 0
    for feeds in batches:
        count = batch_samples(feeds)
        if position < boundary < position + count:
            cut = boundary - position
            yield {name: value[:cut] for name, value in feeds.items()}, True
            yield {name: value[cut:] for name, value in feeds.items()}, False
        else:
            yield feeds, position < boundary
        position += count

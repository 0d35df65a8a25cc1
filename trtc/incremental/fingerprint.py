"""The fingerprint of everything that decides a plan: the spec after overrides, the model bytes
(external data too), the calibration and accuracy data (listing and contents), the calibration
cache, trtc's version and the TensorRT package that will build it. Equal fingerprints mean the
same build inputs."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from trtc import __version__
from trtc.backend.trt_import import backend_identity
from trtc.hashing import hash_files
from trtc.precision.generator_files import generator_files
from trtc.precision.suffixes import sample_files
from trtc.spec.model import Spec


@dataclass
class Fingerprint:
    components: dict[str, str]
    model_files: list[Path]  # the model and its external data files, in hashing order
    data_inputs: list[Path] = field(default_factory=list)  # calibration/accuracy files and folders, generator sources

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.components, sort_keys=True).encode()).hexdigest()

    @property
    def inputs(self) -> list[Path]:
        """Every file the build reads, for a Make dependency file."""
        return [*self.model_files, *self.data_inputs]

    def as_dict(self) -> dict:
        return {
            "digest": self.digest,
            "components": dict(self.components),
            "model_files": [str(p) for p in self.model_files],
        }


def fingerprint(
    spec: Spec, model_files: list[Path], model_sha256: str | None = None, known: Fingerprint | None = None
) -> Fingerprint:
    """`model_files` is the model and its external data files (known once the model was read;
    the up-to-date check takes them from the last build's report, valid while the model's own
    bytes are unchanged, since the model names its data files). `known`: the up-to-date check's
    fingerprint of the same spec a moment before the build, whose parts other than the model are
    taken as they are (computing them twice hashed the calibration data twice)."""
    if known is not None:
        return Fingerprint(
            {**known.components, "model": model_sha256 or hash_files(model_files)},
            list(model_files),
            list(known.data_inputs),
        )
    components = {
        "spec": spec.fingerprint,
        "model": model_sha256 or hash_files(model_files),
        "trtc": f"{__version__} {code_identity(Path(__file__).resolve().parents[1])}",
        "backend": backend_identity(spec.target.backend),
    }
    data_inputs: list[Path] = list(spec.plugins)
    if spec.plugins:  # a rebuilt plugin library changes the engine
        components["plugins"] = hash_files(list(spec.plugins))
    for key, where, base in _data_sources(spec):
        components[key], files = data_fingerprint(where, base)
        data_inputs += files
    cache = calibration_cache(spec)
    if cache is not None:  # its ranges decide the plan when they match (a hand-edited cache too)
        components["calibration_cache"] = hash_files([cache]) if cache.is_file() else "missing"
        data_inputs.append(cache)
    return Fingerprint(components=components, model_files=list(model_files), data_inputs=data_inputs)


def data_inputs(spec: Spec) -> list[Path]:
    """The data files and folders a build of `spec` reads, listed without reading them."""
    cache = calibration_cache(spec)
    return [path for _, where, base in _data_sources(spec) for path in data_paths(where, base)] + (
        [cache] if cache is not None else []
    )


def calibration_cache(spec: Spec) -> Path | None:
    """The calibration cache file a build of `spec` reads when it exists and writes otherwise."""
    cache = spec.precision.calibration.cache
    if spec.precision.mode not in ("int8", "fp8") or cache is None:
        return None
    return ((spec.source.parent if spec.source else Path.cwd()) / cache).resolve()


def with_written_files(found: Fingerprint, spec: Spec, written: list[tuple[Path, str]]) -> Fingerprint:
    """`found` once the build writes `written`: a calibration cache it writes is the one the next
    build reads, so the fingerprint holds what is written rather than what was there before."""
    cache = calibration_cache(spec)
    for path, text in written:
        if path == cache:
            digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()  # as outputs.py writes it
            found = Fingerprint({**found.components, "calibration_cache": digest}, found.model_files, found.data_inputs)
    return found


def _data_sources(spec: Spec) -> list[tuple[str, str, Path]]:
    base = spec.source.parent if spec.source else Path.cwd()
    return [
        (key, where, base)
        for key, where in (("calibration_data", spec.precision.calibration.data), ("accuracy_data", spec.accuracy.data))
        if where
    ]


def code_identity(package: Path) -> str:
    """trtc's own files by name, size and modification time: an editable install or a patched
    trtc rebuilds, not only a new version number (stat only: this runs on every no-op build)."""
    digest = hashlib.sha256()
    for path in sorted(
        p for p in package.rglob("*") if p.suffix in (".py", ".json", ".css") and "__pycache__" not in p.parts
    ):
        status = path.stat()
        digest.update(f"{path.relative_to(package)} {status.st_size} {status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def data_fingerprint(where: str, base: Path) -> tuple[str, list[Path]]:
    """Hash of a sample source's listing and contents, and the paths it depends on. A folder is
    itself a dependency: adding a sample changes its modification time. A generator is hashed by
    its module's files (generator_files), never by running it."""
    paths = data_paths(where, base)
    if where.startswith("python:"):
        digest = hashlib.sha256(where.encode())  # not found: the build itself reports it; the name only
        root = os.path.commonpath([p.parent for p in paths]) if paths else ""
        for path in paths:  # names relative to the package: a moved project keeps its fingerprint
            digest.update(b"\0" + os.fsencode(os.path.relpath(path, root)) + b"\0" + hash_files([path]).encode())
        return digest.hexdigest(), paths
    if not paths:
        return hashlib.sha256(b"missing " + os.fsencode((base / where).resolve())).hexdigest(), []
    digest = hashlib.sha256()
    for path in paths[1:]:
        digest.update(os.fsencode(path.name) + b"\0" + hash_files([path]).encode())
    return digest.hexdigest(), paths


def data_paths(where: str, base: Path) -> list[Path]:
    """A generator's module files, or a sample folder followed by its samples; none when missing."""
    if where.startswith("python:"):
        return generator_files(where.removeprefix("python:"), base)
    folder = (base / where).resolve()
    return [folder, *sample_files(folder)] if folder.is_dir() else []

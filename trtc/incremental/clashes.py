"""Outputs never overwrite inputs. Before anything is written, every path a command will write
is compared with every file and folder it reads, by real identity: the resolved path (symlinks
followed), the same inode (hard links), and for a folder of samples, any path inside it (a new
file there would change the data). A clash is a spec error (exit 2) naming both."""

from __future__ import annotations

import os
from pathlib import Path

from trtc.errors import SpecError
from trtc.incremental.fingerprint import calibration_cache
from trtc.precision.generator_files import generator_files
from trtc.spec.model import Spec

Named = tuple[str, Path]  # what it is (a spec key or a description) and where


def refuse_clashes(outputs: list[Named], inputs: list[Named]) -> None:
    for output_name, output in outputs:
        for input_name, source in inputs:
            relation = _relation(output, source)
            if relation:
                raise SpecError(
                    f"{output_name}: {output} {relation} {input_name} {source}; writing there would change an input "
                    "of the build: choose another path"
                )


def build_inputs(spec: Spec, model_files: list[Path] | None = None) -> list[Named]:
    """Every file and folder a build of `spec` reads; `model_files` (the model and its external
    data) when known, else the model alone."""
    base = spec.source.parent if spec.source else Path.cwd()
    inputs: list[Named] = [("the spec", spec.source)] if spec.source else []
    files = model_files or [spec.model]
    inputs += [("the model", files[0])] + [("the model's external data file", f) for f in files[1:]]
    inputs += [(f"plugins[{i}]", p) for i, p in enumerate(spec.plugins)]
    for key, where in (
        ("precision.calibration.data", spec.precision.calibration.data),
        ("accuracy.data", spec.accuracy.data),
    ):
        if where is None or where == "random":
            continue
        if where.startswith("python:"):
            inputs += [
                (f"{key} (a module of its generator)", p) for p in generator_files(where.removeprefix("python:"), base)
            ]
        else:
            inputs.append((key, (base / where).resolve()))
    return inputs


def build_outputs(spec: Spec, depfile: Path | None = None) -> list[Named]:
    """Every path a build of `spec` writes. The timing cache and the calibration cache are read
    and written on purpose, so they are only outputs here (they must not be any other input)."""
    output = spec.output
    outputs: list[Named] = [
        ("output.plan", output.plan),
        ("output.report", output.report),
        ("output.report (its Markdown)", output.markdown),
        ("output.report (its HTML)", output.html),
        ("output.report (its build log)", output.log),
    ]
    if output.onnx:
        outputs.append(("output.onnx", output.onnx))
    cache = calibration_cache(spec)
    if cache is not None:
        outputs.append(("precision.calibration.cache", cache))
    if spec.target.timing_cache:
        outputs.append(("target.timing_cache", spec.target.timing_cache))
    if depfile:
        outputs.append(("--depfile", depfile))
    return outputs


def _relation(output: Path, source: Path) -> str | None:
    """How writing `output` would touch `source`, or None."""
    written, read = Path(os.path.realpath(output)), Path(os.path.realpath(source))
    if written == read:
        return "is"
    try:
        if os.path.exists(output) and os.path.exists(source) and os.path.samefile(output, source):
            return "is a hard link to"
    except OSError:
        pass
    if os.path.isdir(read) and read in written.parents:
        return "lies inside the folder of"
    return None

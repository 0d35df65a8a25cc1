"""Whether a build can be skipped: the last build's report holds its fingerprint; the plan must be
the one that report describes and every other output must exist."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from trtc.errors import TrtcError
from trtc.hashing import hash_files
from trtc.incremental.fingerprint import Fingerprint, fingerprint
from trtc.incremental.stamps import unchanged
from trtc.inputs import regular_file
from trtc.spec.model import Spec


@dataclass
class Verdict:
    up_to_date: bool
    reason: str  # why it must be rebuilt, or "up to date"
    fingerprint: Fingerprint | None = None  # computed when the last build's inputs are known
    report: dict | None = None  # the last build's report, when up to date


def up_to_date_verdict(spec: Spec) -> Verdict:
    if not spec.output.report.exists():
        return Verdict(False, "no previous build")
    report = _last_report(spec.output.report)
    if report is None:
        return Verdict(False, "the last report cannot be read")
    if report["build"].get("status") == "failed":  # a plan at that path is older than this report
        return Verdict(False, "the last build failed its accuracy gate")
    recorded = report["build"].get("fingerprint") or {}
    if not recorded:
        return Verdict(False, "the last report has no fingerprint (an older trtc wrote it)")
    if not _well_formed(recorded):
        return Verdict(False, "the last report's fingerprint is damaged")
    base = spec.source.parent if spec.source else Path.cwd()
    model_files = [
        Path(os.path.normpath(base / p)) for p in recorded.get("model_files", [])
    ]  # relative to the spec's folder
    if not model_files or model_files[0] != spec.model:
        return Verdict(False, "the model path changed")
    if not all(p.is_file() for p in model_files):
        return Verdict(False, "a model file is missing")
    file_stamps = report["build"].get("file_stamps")
    # While the model files keep the stamps they had when hashed, the recorded hash stands.
    known_hash = recorded.get("components", {}).get("model") if unchanged(file_stamps, model_files, spec) else None
    current = fingerprint(spec, model_files, known_hash if isinstance(known_hash, str) else None)
    changed = [
        key
        for key in sorted({*current.components, *recorded.get("components", {})})
        if current.components.get(key) != recorded.get("components", {}).get(key)
    ]
    if changed:
        return Verdict(False, f"{', '.join(_NAMES.get(key, key) for key in changed)} changed", current)
    missing = [p for p in spec.output.all_files() if not p.is_file()]
    if missing:
        return Verdict(False, f"{missing[0].name} is missing", current)
    plan = spec.output.plan
    if plan.stat().st_size != report["build"].get("plan_bytes") or (
        not unchanged(file_stamps, [plan], spec) and hash_files([plan]) != report["build"].get("plan_sha256")
    ):
        return Verdict(False, f"{plan.name} is not the plan the report describes", current)
    return Verdict(True, "up to date", current, report)


_NAMES = {
    "spec": "the spec",
    "model": "the model",
    "trtc": "trtc itself (version or code)",
    "backend": "the TensorRT package",
    "calibration_data": "the calibration data",
    "accuracy_data": "the accuracy data",
    "calibration_cache": "the calibration cache",
}


def _last_report(path: Path) -> dict | None:
    """The last build's report, or None when it is not one (any file may sit at that path: a
    FIFO, a damaged or hand-edited report, another program's JSON)."""
    try:
        report = json.loads(regular_file(path, "output.report").read_text())
    except (TrtcError, OSError, ValueError, RecursionError):
        return None
    return report if isinstance(report, dict) and isinstance(report.get("build"), dict) else None


def _well_formed(recorded: object) -> bool:
    return (
        isinstance(recorded, dict)
        and isinstance(recorded.get("components", {}), dict)
        and isinstance(recorded.get("model_files", []), list)
        and all(isinstance(p, str) for p in recorded.get("model_files", []))
    )

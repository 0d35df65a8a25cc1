"""The report of a build that failed its accuracy gate, so the figures and the layer ranking
outlive the failure. Only the JSON report is written: no plan (the all-or-nothing rule: an old
plan at that path stays as it was), nor what describes a plan (Markdown, HTML, builder log).
Its `build.status: failed` keeps the next `trtc build` from finding an old plan up to date
(trtc/incremental/up_to_date.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from trtc import __version__
from trtc.errors import AccuracyGateError, UsageError
from trtc.incremental.stamps import portable_path
from trtc.outputs import StagedOutputs
from trtc.report import REPORT_SCHEMA
from trtc.report.json_text import strict_json
from trtc.spec.model import Spec

FAILED = "failed"


def write_gate_report(spec: Spec, failure: AccuracyGateError, warnings: list[str], model_sha256: str) -> str:
    """Write the report; the line that tells the user where it is."""
    report = {
        "schema": REPORT_SCHEMA,
        "build": {
            "name": spec.name,
            "trtc": __version__,
            "status": FAILED,
            "error": failure.message,
            "spec": spec.source.name if spec.source else None,
            "spec_fingerprint": spec.fingerprint,
            "model": portable_path(spec.model, spec),
            "model_sha256": model_sha256,
            "plan": None,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "precision": {"mode": spec.precision.mode},
        **failure.sections,
        "fusion": None,
        "cost": None,
        "warnings": list(warnings),
    }
    try:
        with StagedOutputs() as staged:
            staged.write(spec.output.report, strict_json(report) + "\n")
            staged.commit()
    except UsageError as error:  # the gate's failure stays the error, with its exit code
        return f"report not written: {error.message}"
    calibration = failure.sections.get("calibration") or {}
    ranked = "sensitivity" in calibration or "auto_fallback" in calibration
    return f"report with the accuracy figures{' and the layer ranking' if ranked else ''}: {spec.output.report} (no plan written)"

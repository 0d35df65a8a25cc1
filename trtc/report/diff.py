"""What changed between two builds, from their JSON reports: kernels (matched by the ONNX nodes
they cover, since TensorRT's kernel names change from build to build), fusions, precisions,
estimated time, FLOPs and memory traffic, accuracy, plan size and warnings; and `--fail-on`
thresholds that turn a change into a failed CI gate."""

from __future__ import annotations

import json
import math
import re
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from trtc.errors import DiffThresholdError, UsageError, closest
from trtc.report import REPORT_SCHEMA
from trtc.spec.validate import schema_problems

# Reports of the largest models are a few MB; anything far larger is not one (or is /dev/zero).
MAX_REPORT_BYTES = 64 << 20
_PASS_A_REPORT = "pass the .report.json a trtc build wrote"


def load_report(path: Path) -> dict:
    """The report at `path`, checked against the schema of what diff reads (UsageError if not)."""
    report = _json_document(path)
    if not isinstance(report, dict) or "schema" not in report or not isinstance(report.get("build"), dict):
        raise UsageError(f"{path}: not a trtc build report (no 'schema' and 'build'); {_PASS_A_REPORT}")
    if report["schema"] != REPORT_SCHEMA:
        raise UsageError(
            f"{path}: report schema '{report['schema']}' is not '{REPORT_SCHEMA}'; rebuild it with this trtc"
        )
    problems = schema_problems(report, lambda _: f"{path}: not a trtc build report", _input_schema())
    if problems:
        raise UsageError(f"{problems[0]}; {_PASS_A_REPORT}")
    return report


def _json_document(path: Path):
    """Parsed JSON, refusing what is not a regular file of report size before reading it."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise UsageError(f"{path}: not a regular file; {_PASS_A_REPORT}")
        if status.st_size > MAX_REPORT_BYTES:
            raise UsageError(
                f"{path}: {status.st_size:,} bytes, more than any trtc report ({MAX_REPORT_BYTES >> 20} MiB); {_PASS_A_REPORT}"
            )
        with open(path, "rb") as handle:
            text = handle.read(MAX_REPORT_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such report; pass the .report.json files of two trtc builds") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror}); {_PASS_A_REPORT}") from None
    if len(text) > MAX_REPORT_BYTES:  # it grew since stat
        raise UsageError(f"{path}: more than {MAX_REPORT_BYTES >> 20} MiB, more than any trtc report; {_PASS_A_REPORT}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: not a JSON file ({type(exc).__name__}); {_PASS_A_REPORT}") from None
    except RecursionError:
        raise UsageError(f"{path}: not a JSON file (nested too deeply); {_PASS_A_REPORT}") from None


def _input_schema() -> dict:
    return json.loads(resources.files("trtc.report").joinpath("diff_input.schema.json").read_text())


def _finite(value: float | int) -> bool:
    """JSON's numbers parse to ints (always finite, however large) or floats (NaN, Infinity too)."""
    return not isinstance(value, float) or math.isfinite(value)


# Each metric: how to read it from a report, and which direction is worse.
def _worst_cosine(report: dict) -> float | None:
    """Measured against the FP32 model, so an FP32 build (which has no accuracy section) is that
    reference itself: 1. Without this a CI gate against an FP32 baseline could not be written."""
    if is_the_reference(report):
        return 1.0
    cosines = [o["cosine"] for o in _measured_outputs(report) if o.get("cosine") is not None]
    # min() passes over a NaN unless it comes first: a cosine that is not a number is the worst.
    return next((c for c in cosines if not _finite(c)), min(cosines, default=None))


def is_the_reference(report: dict) -> bool:
    """An FP32 build without accuracy figures: the model accuracy is measured against."""
    return report.get("accuracy") is None and (report.get("precision") or {}).get("mode", "fp32") == "fp32"


def _measured_outputs(report: dict) -> list[dict]:
    """Outputs whose figures were measured on samples: reports of older trtc versions gave a
    cosine of 1.0 for zero samples, which is no figure."""
    return [o for o in (report.get("accuracy") or {}).get("outputs") or [] if o.get("samples")]


METRICS = {
    "time": ("est. engine time (us)", lambda r: (r.get("cost") or {}).get("estimated_total_us")),
    "plan_size": ("plan size (B)", lambda r: r["build"].get("plan_bytes")),
    "kernels": ("kernels", lambda r: ((r.get("fusion") or {}).get("counts") or {}).get("kernels")),
    "flops": ("FLOPs", lambda r: ((r.get("cost") or {}).get("after_fusion") or {}).get("flops")),
    "mac": ("memory traffic (B)", lambda r: ((r.get("cost") or {}).get("after_fusion") or {}).get("mac_bytes")),
    "accuracy": ("worst cosine vs FP32", _worst_cosine),
    "warnings": ("warnings", lambda r: len(r.get("warnings") or [])),
    "build_time": ("TensorRT build time (s)", lambda r: r["build"].get("build_seconds")),
}


@dataclass(frozen=True)
class Threshold:
    """`metric=+5%`: fail when the metric grows by more than 5%; `accuracy=-0.001`: fail when it
    falls by more than 0.001; `kernels=+0`: fail on any growth."""

    metric: str
    limit: float  # how far it may move, >= 0
    relative: bool
    text: str
    falling: bool  # a drop is the failure (the limit's sign; -0 is "any drop", which a signed 0 cannot say)

    def crossed(self, old: float, new: float) -> bool:
        if not (_finite(old) and _finite(new)):  # NaN compares false with everything: it would pass any gate
            return True
        change = new - old
        if self.relative:
            change = (
                change / abs(old) * 100 if old else (0.0 if change == 0 else float("inf") * (1 if change > 0 else -1))
            )
        return change < -self.limit if self.falling else change > self.limit


_THRESHOLD = re.compile(r"^(?P<metric>[a-z_]+)=(?P<sign>[+-])(?P<value>\d+(\.\d*)?|\.\d+)(?P<percent>%?)$")


def parse_threshold(text: str) -> Threshold:
    match = _THRESHOLD.match(text.strip())
    if not match:
        raise UsageError(
            f"--fail-on {text!r}: expected METRIC=+N, METRIC=+N% or METRIC=-N (e.g. time=+5%, accuracy=-0.001)"
        )
    metric = match["metric"]
    if metric not in METRICS:
        hint = closest(metric, list(METRICS))
        raise UsageError(
            f"--fail-on {text!r}: unknown metric '{metric}'"
            + (f" (did you mean '{hint}'?)" if hint else "")
            + f"; known: {', '.join(METRICS)}"
        )
    value = float(match["value"])
    return Threshold(metric, value, bool(match["percent"]), text.strip(), falling=match["sign"] == "-")


def diff_reports(old: dict, new: dict) -> dict:
    metrics = {}
    for key, (label, read) in METRICS.items():
        before, after = read(old), read(new)
        change = after - before if before is not None and after is not None else None
        metrics[key] = {
            "label": label,
            "old": before,
            "new": after,
            "change": change,
            "percent": round(change / abs(before) * 100, 3) if change is not None and before else None,
        }
    return {
        "old": _identity(old),
        "new": _identity(new),
        "metrics": metrics,
        "kernels": _kernel_changes(old, new),
        "accuracy": _accuracy_changes(old, new),
        "warnings": {
            "added": [w for w in new.get("warnings") or [] if w not in (old.get("warnings") or [])],
            "removed": [w for w in old.get("warnings") or [] if w not in (new.get("warnings") or [])],
        },
    }


def check_thresholds(diff: dict, thresholds: list[Threshold]) -> list[str]:
    """One line per crossed threshold; raises when a threshold names a metric a report lacks."""
    crossed = []
    for threshold in thresholds:
        metric = diff["metrics"][threshold.metric]
        if metric["old"] is None or metric["new"] is None:
            side = "old" if metric["old"] is None else "new"
            if threshold.metric == "accuracy" and diff[side]["accuracy_not_measured"]:
                raise UsageError(
                    f"--fail-on {threshold.text}: the {side} report's accuracy was not measured "
                    f"({diff[side]['accuracy_not_measured']}); "
                    "measure it (see that report) or drop this threshold"
                )
            raise UsageError(
                f"--fail-on {threshold.text}: the {side} report has no {metric['label']}; drop this threshold"
            )
        if threshold.crossed(metric["old"], metric["new"]):
            shown = (
                f"{metric['percent']:+.2f}%"
                if threshold.relative and metric["percent"] is not None
                else f"{metric['change']:+.6g}"
            )
            digits = ".7f" if threshold.metric == "accuracy" else ".6g"  # a cosine of 0.9999998 is not 1
            crossed.append(
                f"{metric['label']}: {metric['old']:{digits}} -> {metric['new']:{digits}} ({shown}) crosses {threshold.text}"
            )
    return crossed


def enforce_thresholds(diff: dict, thresholds: list[Threshold]) -> None:
    crossed = check_thresholds(diff, thresholds)
    if crossed:
        raise DiffThresholdError(f"{len(crossed)} of {len(thresholds)} --fail-on threshold(s) crossed", crossed)


def _identity(report: dict) -> dict:
    build = report["build"]
    return {
        "name": build.get("name"),
        "plan": build.get("plan"),
        "built_at": build.get("built_at"),
        "backend": f"{build.get('backend')} {build.get('backend_version')}",
        "precision": (report.get("precision") or {}).get("mode"),
        "accuracy_not_measured": (report.get("accuracy") or {}).get("reason"),
        "is_the_fp32_reference": is_the_reference(report),  # its worst cosine is 1 by definition, not measured
    }


def _kernel_key(kernel: dict) -> tuple:
    """Kernels are the same kernel when they cover the same nodes of the user's model (casts and
    Q/DQ that trtc added do not count: they differ between precisions); kernels that cover none
    (shape calculations, reformats) by their type and position among those."""
    users = _user_nodes(kernel)
    return tuple(users) if users else ("", kernel["type"])


def _user_nodes(kernel: dict) -> list[str]:
    """The nodes of the user's model that a kernel covers, sorted."""
    return sorted(
        n for n, op in zip(kernel["onnx_nodes"], kernel["onnx_op_types"]) if not op.endswith("(added by trtc)")
    )


def _kernel_changes(old: dict, new: dict) -> dict:
    matched, removed, added = _pair_kernels(
        (old.get("fusion") or {}).get("kernels") or [], (new.get("fusion") or {}).get("kernels") or []
    )
    precision, time = [], []
    for was, now in matched:
        nodes = _user_nodes(was)
        if was["precision"] != now["precision"]:
            precision.append({"onnx_nodes": nodes, "old": was["precision"], "new": now["precision"]})
        if _time_moved(was.get("estimated_us"), now.get("estimated_us")):
            time.append({"onnx_nodes": nodes, "old_us": was["estimated_us"], "new_us": now["estimated_us"]})
    time.sort(key=lambda t: -abs(t["new_us"] - t["old_us"]))
    return {
        "added": [_kernel_summary(k) for k in added],
        "removed": [_kernel_summary(k) for k in removed],
        "precision_changed": sorted(precision, key=lambda p: p["onnx_nodes"]),
        "time_changed": time,
        "unchanged": len(matched) - len(precision),
    }


def _time_moved(old_us: float | None, new_us: float | None) -> bool:
    """Rounding in the reports moves estimates by hundredths: only a 1% change is a change."""
    return old_us is not None and new_us is not None and abs(new_us - old_us) > max(0.01, 0.01 * old_us)


def _pair_kernels(old: list[dict], new: list[dict]) -> tuple[list[tuple[dict, dict]], list[dict], list[dict]]:
    """(matched pairs, only in old, only in new). Several kernels with one key (two over no node of
    the model, or a cast kernel beside the one it feeds) pair with a kernel of their own type
    first, then in build order, so one more of them in the new build is one added kernel, not a
    reshuffle of all of them (nor a convolution paired with the cast before it)."""
    pairs: dict[int, dict] = {}  # index in `new` -> its old kernel
    left = list(old)
    for same_type in (True, False):
        waiting: dict[tuple, list[dict]] = {}
        for kernel in left:
            waiting.setdefault(_kernel_key(kernel) + ((kernel["type"],) if same_type else ()), []).append(kernel)
        for position, kernel in enumerate(new):
            queue = waiting.get(_kernel_key(kernel) + ((kernel["type"],) if same_type else ()))
            if position not in pairs and queue:
                pairs[position] = queue.pop(0)
        paired = {id(kernel) for kernel in pairs.values()}
        left = [kernel for kernel in left if id(kernel) not in paired]
    matched = [(pairs[position], kernel) for position, kernel in enumerate(new) if position in pairs]
    added = [kernel for position, kernel in enumerate(new) if position not in pairs]
    return matched, sorted(left, key=lambda k: k.get("index", 0)), added


def _kernel_summary(kernel: dict) -> dict:
    users = _user_nodes(kernel)
    return {
        "onnx_nodes": users,
        "added_by_trtc": len(kernel["onnx_nodes"]) - len(users),
        "type": kernel["type"],
        "precision": kernel["precision"],
        "estimated_us": kernel.get("estimated_us"),
    }


def _accuracy_changes(old: dict, new: dict) -> list[dict]:
    before = {o["name"]: o for o in _measured_outputs(old)}
    after = {o["name"]: o for o in _measured_outputs(new)}
    return [
        {
            "output": name,
            "old_cosine": (before.get(name) or {}).get("cosine"),
            "new_cosine": (after.get(name) or {}).get("cosine"),
            "old_rel_l2": (before.get(name) or {}).get("rel_l2_error"),
            "new_rel_l2": (after.get(name) or {}).get("rel_l2_error"),
        }
        for name in dict.fromkeys([*before, *after])
    ]

"""GitHub Actions: when `GITHUB_STEP_SUMMARY` names a file, each build's Markdown report is
appended to it, so the job's summary page shows what was built, fused and how accurate it is."""

from __future__ import annotations

import os
from pathlib import Path

from trtc.commands.build_job import BUILT, UP_TO_DATE, JobResult


def append_step_summary(results: list[JobResult]) -> Path | None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    from trtc.report.markdown import render_markdown, text

    parts = []
    for result in results:
        if result.status == BUILT and result.report:
            parts.append(render_markdown(result.report))
        elif result.status == UP_TO_DATE:
            parts.append(f"**trtc {text(result.name)}**: up to date, not rebuilt.\n")
        else:  # errors quote node names and file names: escaped like the report's
            parts.append(
                f"**trtc {text(result.name)}: build {result.status}** (exit {result.exit_code}): {text(result.error)}\n"
                + "".join(f"- {text(line)}\n" for line in result.details[:20])
            )
    try:
        with open(target, "a", encoding="utf-8") as summary:
            summary.write("\n".join(parts) + "\n")
    except OSError:
        return None  # the summary is a courtesy; it never fails a build
    return Path(target)

"""Every failure a user can cause or meet, each class carrying its documented exit code.

The core raises these; only the CLI prints them, as one line (plus indented detail lines where a
single line cannot hold the facts, such as a list of unsupported nodes).
"""

from __future__ import annotations

import difflib


class TrtcError(Exception):
    """Base of all expected failures. `exit_code` is what the process returns."""

    exit_code = 1

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = list(details or [])


class UsageError(TrtcError):
    """A wrong command-line argument or a missing input file."""

    exit_code = 2


class SpecError(TrtcError):
    """The build spec does not parse or does not validate. `details` holds one line per problem."""

    exit_code = 2


class ModelError(TrtcError):
    """The ONNX model cannot be read or does not fit the spec (unknown output, missing range, ...)."""

    exit_code = 2


class BackendUnavailableError(TrtcError):
    """No usable TensorRT package is installed, or the one the spec asks for is missing."""

    exit_code = 1


class GpuUnavailableError(TrtcError):
    """A command needs a GPU that TensorRT can use and there is none."""

    exit_code = 1


class BuildError(TrtcError):
    """TensorRT failed to parse or build the network."""

    exit_code = 1


class UnsupportedModelError(BuildError):
    """TensorRT's ONNX parser refused nodes; `details` lists every one."""


class AccuracyGateError(TrtcError):
    """The reduced-precision model failed an accuracy gate set in the spec. `sections`: the
    report's precision, calibration and accuracy sections of the graph that failed, for the
    report a failed build still writes."""

    exit_code = 3

    def __init__(self, message: str, details: list[str] | None = None, sections: dict | None = None):
        super().__init__(message, details)
        self.sections = dict(sections or {})


class DiffThresholdError(TrtcError):
    """`trtc diff --fail-on`: a change between two builds crossed a threshold (a CI gate)."""

    exit_code = 4


def closest(word: str, choices) -> str | None:
    """The choice `word` most likely meant, for "did you mean ...?" in one-line errors."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    return match[0] if match else None

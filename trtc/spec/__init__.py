"""The build spec: schema, loading with overrides, and the validated model.

Its names are imported when first used: the core's steps import `trtc.spec.model` for the
spec's objects, and that must not load the YAML reader and the loader behind `load_spec`.
(`preflight` is imported from its module: a name a submodule also has would be the module.)"""

from importlib import import_module

_WHERE = {
    "load_spec": "trtc.spec.load",
    "parse_size": "trtc.spec.load",
    "spec_schema": "trtc.spec.schema",
    "Spec": "trtc.spec.model",
    "ShapeRange": "trtc.spec.model",
    "TargetSpec": "trtc.spec.model",
    "PrecisionSpec": "trtc.spec.model",
    "OutputPaths": "trtc.spec.model",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'trtc.spec' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)

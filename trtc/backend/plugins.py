"""Plugin libraries (`plugins:` in the spec) loaded into TensorRT's registry before parsing, and
what a node the parser refused would need: which registered plugin, if any, has its name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trtc.backend.trt_import import TensorRT
from trtc.backend.trt_logger import clean
from trtc.errors import SpecError


@dataclass(frozen=True)
class LoadedPlugin:
    path: Path
    creators: tuple[str, ...]  # "name v<version>" of each creator the library added

    def as_dict(self) -> dict:
        return {"path": str(self.path), "creators": list(self.creators)}


# A library stays loaded for the life of the process; loading it twice would register its
# creators twice.
_loaded: dict[Path, LoadedPlugin] = {}
_builtins_registered: set[str] = set()


def load_plugins(trt: TensorRT, paths: tuple[Path, ...], messages: list[tuple[str, str]]) -> list[LoadedPlugin]:
    """Load each library into the backend's registry (after TensorRT's own plugins, where the
    backend ships them). `messages` is the task's logger record, for TensorRT's reason."""
    registry = trt.module.get_plugin_registry()
    if trt.name not in _builtins_registered and hasattr(trt.module, "init_libnvinfer_plugins"):
        trt.module.init_libnvinfer_plugins(None, "")
        _builtins_registered.add(trt.name)
    loaded = []
    for index, path in enumerate(paths):
        if path in _loaded:
            loaded.append(_loaded[path])
            continue
        before = set(creator_names(trt))
        errors_before = len(messages)
        if registry.load_library(str(path)) is None:
            said = [
                clean(m)
                for sev, m in messages[errors_before:]
                if sev in ("ERROR", "INTERNAL_ERROR") and "Cuda Runtime" not in m
            ]
            reason = said[0] if said else "it exports no TensorRT plugin creators"
            raise SpecError(
                f"plugins[{index}]: {trt.name} could not load {path} as a plugin library: {reason}; "
                "give a library built against this TensorRT that exports setLoggerFinder and getCreators"
            )
        _loaded[path] = LoadedPlugin(path, tuple(sorted(set(creator_names(trt)) - before)))
        loaded.append(_loaded[path])
    return loaded


def creator_names(trt: TensorRT) -> list[str]:
    registry = trt.module.get_plugin_registry()
    creators = getattr(registry, "all_creators", None) or getattr(registry, "plugin_creator_list", [])
    return [f"{c.name} v{c.plugin_version}" for c in creators]


def plugin_hint(trt: TensorRT, op_type: str) -> str:
    """What a node of `op_type` that the parser refused would need, from the registry."""
    registered = [name for name in creator_names(trt) if name.split(" v")[0] == op_type]
    if registered:
        versions = ", ".join(name.split(" v")[1] for name in registered)
        return (
            f"a plugin named {op_type} is registered (version {versions}): the node must ask for it with its plugin_version "
            "(and plugin_namespace) attributes, and the plugin must be creatable on this machine (some need a GPU at build time)"
        )
    return (
        f"TensorRT has no importer for {op_type} and no registered plugin has that name; load the library that provides it "
        "with plugins: [path/to/lib.so] in the spec, or export the model without this op"
    )

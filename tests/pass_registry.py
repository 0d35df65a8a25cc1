"""Registering a test-only graph pass: in trtc's registry and in the spec schema's enum of pass
names (a spec naming an unknown pass is refused before anything runs)."""

from trtc import passes as registry
from trtc.spec import schema


def register_pass(monkeypatch, name: str, pass_class) -> None:
    monkeypatch.setitem(registry.PASSES, name, pass_class)
    monkeypatch.setattr(schema, "PASS_NAMES", [*schema.PASS_NAMES, name])
    for key in ("passes", "disable"):
        field = schema.SPEC_SCHEMA["properties"]["fusion"]["properties"][key]
        items = field["oneOf"][1]["items"] if key == "passes" else field["items"]
        monkeypatch.setitem(items, "enum", schema.PASS_NAMES)

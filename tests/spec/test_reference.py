"""The spec reference in docs/ is generated from the schema: it must match the generator's output,
and every example the schema shows must validate against the field it illustrates."""

from __future__ import annotations

from pathlib import Path

import jsonschema
from click.testing import CliRunner

from trtc.cli import main
from trtc.passes import PASSES
from trtc.report.kernel_cost import choose_gpu
from trtc.spec.docs import REGENERATE, reference_markdown
from trtc.spec.schema import SPEC_SCHEMA

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "spec-reference.md"


def _fields(schema: dict, path: str = "", branch: bool = False):
    """Every (key path, subschema): properties, map values, list items and the keys of oneOf
    branches (a branch itself is described by its field)."""
    if not branch:
        yield path, schema
    for key, child in schema.get("properties", {}).items():
        yield from _fields(child, f"{path}.{key}" if path else key)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _fields(schema["additionalProperties"], f"{path}.<name>")
    if isinstance(schema.get("items"), dict):
        yield from _fields(schema["items"], f"{path}[]")
    for branch in schema.get("oneOf", []):
        yield from _fields(branch, path, branch=True)


def test_committed_reference_is_current():
    assert REFERENCE.read_text(encoding="utf-8") == reference_markdown(), (
        f"docs/spec-reference.md is stale; regenerate it: {REGENERATE}"
    )


def test_schema_markdown_command_prints_the_reference():
    result = CliRunner().invoke(main, ["schema", "--markdown"])
    assert result.exit_code == 0
    assert result.stdout == reference_markdown()


def test_every_field_is_described_and_documented():
    text = reference_markdown()
    for path, field in _fields(SPEC_SCHEMA):
        if not path or path.endswith("[]") or path == "inputs.<name>" or path.startswith("profiles"):
            continue
        assert field.get("description"), f"{path} has no description"
        assert f"`{path.replace('<name>', '<input>')}`" in text, f"{path} is missing from the reference"


def test_every_example_validates_against_its_field():
    examples = 0
    for path, field in _fields(SPEC_SCHEMA):
        for example in field.get("examples", []):
            errors = list(jsonschema.Draft202012Validator(field).iter_errors(example))
            assert not errors, f"{path}: example {example!r} is invalid: {errors[0].message}"
            examples += 1
    assert examples >= 20


def test_lists_in_descriptions_match_the_code():
    fusion = SPEC_SCHEMA["properties"]["fusion"]["properties"]["passes"]["description"]
    assert all(name in fusion for name in PASSES), "fusion.passes description must list every pass"
    gpu = SPEC_SCHEMA["properties"]["target"]["properties"]["gpu"]["description"]
    for name in ("RTX 3090", "RTX 4090", "RTX 5090", "A100", "H100", "L4"):
        assert choose_gpu(name, ())["name"] == name and name in gpu

"""The spec reference (docs/spec-reference.md) as Markdown, generated from the JSON Schema so that
the documentation cannot drift from what validation accepts. `trtc schema --markdown` prints it."""

from __future__ import annotations

import re

import yaml

from trtc.spec.schema import SPEC_SCHEMA

REGENERATE = "python -m trtc schema --markdown > docs/spec-reference.md"

_INTRO = f"""\
# Build spec reference

<!-- Generated from trtc/spec/schema.py by `{REGENERATE}`; do not edit by hand. -->

A build spec is a YAML mapping; only `model` is required. Relative paths are relative to the
spec's folder (to the current folder for a value given with `--set`). Any field can be overridden
on the command line: `trtc build spec.yaml --set max_batch=8 --set precision=fp16`.
`trtc schema` prints the same schema as JSON Schema, for editors (e.g. a YAML language server).
The [user guide](guide.md) explains how the fields work together.
"""


def schema_text() -> str:
    """The spec's JSON Schema as `trtc schema` prints and `trtc init` writes it for editors."""
    import json

    from trtc.spec import spec_schema

    return json.dumps(spec_schema(), indent=2) + "\n"


def reference_markdown(schema: dict | None = None) -> str:
    """The whole reference: an index of top-level keys, then one section per key, nested keys
    after their parent."""
    schema = schema or SPEC_SCHEMA
    required = set(schema.get("required", []))
    sections: list[str] = []
    index: list[str] = []
    seen: dict[int, str] = {}
    for key, field in schema["properties"].items():
        title = f"`{key}`"
        index.append(
            f"- [{title}](#{_slug(title)}){' (required)' if key in required else ''}: {_first_sentence(field)}"
        )
        sections += _field(key, field, 2, key in required, seen)
    return "\n".join([_INTRO, "## Keys", "", *index, "", *sections]).rstrip() + "\n"


def _field(path: str, field: dict, level: int, required: bool, seen: dict[int, str]) -> list[str]:
    lines = ["#" * level + f" `{path}`", ""]
    if field.get("description"):
        lines += [_prose(field["description"]), ""]
    facts = [f"- **type**: {_type_words(field)}"]
    if required:
        facts.append("- **required**")
    if "x-expected" in field:
        facts.append(f"- **accepts**: {field['x-expected']}")
    if "default" in field:
        facts.append(f"- **default**: `{_flow(field['default'])}`")
    leaf = path.rsplit(".", 1)[-1]
    for example in field.get("examples", []):
        facts.append(f"- **example**: `{leaf}: {_flow(example)}`")
    lines += [*facts, ""]
    if id(field) in seen:  # the same schema object documented under another key
        return lines
    seen[id(field)] = path
    for child_path, child, child_required in _children(path, field):
        if id(child) in seen:
            lines += [
                "#" * min(level + 1, 6) + f" `{child_path}`",
                "",
                f"Same keys as [`{seen[id(child)]}`](#{_slug('`' + seen[id(child)] + '`')}).",
                "",
            ]
            continue
        lines += _field(child_path, child, min(level + 1, 6), child_required, seen)
    return lines


def _children(path: str, field: dict):
    """Nested fields: an object's properties, a map's value, a list's items when they are
    mappings, and the mapping branch of a oneOf."""
    for branch in field.get("oneOf", []):
        yield from _children(path, branch)
    required = set(field.get("required", []))
    for key, child in field.get("properties", {}).items():
        yield f"{path}.{key}", child, key in required
    extra = field.get("additionalProperties")
    if isinstance(extra, dict):
        name = "<input>" if path == "inputs" or path.startswith("profiles") else "<name>"
        for key, child in extra.get("properties", {}).items():
            yield f"{path}.{name}.{key}", child, False
    items = field.get("items")
    if isinstance(items, dict) and (items.get("properties") or isinstance(items.get("additionalProperties"), dict)):
        yield f"{path}[]", items, False


def _type_words(field: dict) -> str:
    if "enum" in field:
        return "one of " + ", ".join(f"`{_flow(option)}`" for option in field["enum"])
    if "oneOf" in field:
        return " or ".join(_type_words(branch) for branch in field["oneOf"])
    kind = field.get("type")
    if kind == "array":
        words = "list"
        if "items" in field:
            words += f" of {_plural(_type_words(field['items']))}"
        limits = []
        if field.get("minItems") == field.get("maxItems") and "minItems" in field:
            limits.append(f"exactly {field['minItems']}")
        else:
            if "minItems" in field:
                limits.append(f"at least {field['minItems']}")
            if "maxItems" in field:
                limits.append(f"at most {field['maxItems']}")
        if field.get("uniqueItems"):
            limits.append("no duplicates")
        return words + (f" ({', '.join(limits)})" if limits else "")
    if kind == "object":
        if field.get("properties"):
            return "mapping (keys below)"
        if isinstance(field.get("additionalProperties"), dict):
            return "mapping of name -> settings (keys below)"
        return "mapping"
    if kind in ("integer", "number"):
        return kind + _bounds(field)
    if kind == "string" and "pattern" in field:
        return f"string matching `{field['pattern']}`"
    if kind is None:
        return "any"
    return kind


def _bounds(field: dict) -> str:
    parts = []
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in field:
            parts.append(f"{sign} {field[key]}")
    return (" " + " and ".join(parts)) if parts else ""


def _plural(words: str) -> str:
    if " or " in words:
        return " or ".join(_plural(part) for part in words.split(" or "))
    for singular, plural in (
        ("integer", "integers"),
        ("number", "numbers"),
        ("string", "strings"),
        ("boolean", "booleans"),
        ("mapping", "mappings"),
        ("list", "lists"),
    ):
        if words.startswith(singular):
            return plural + words[len(singular) :]
    return words


def _flow(value) -> str:
    """A value as YAML flow text, the way it is written in a spec (quoted where YAML needs it)."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1000).strip()
    return text.removesuffix("...").strip()


def _prose(text: str) -> str:
    """Description text safe in Markdown: `<name>` would vanish as an unknown HTML tag."""
    return text.replace("<", "&lt;")


def _first_sentence(field: dict) -> str:
    text = _prose(field.get("description", ""))
    match = re.match(r"(.+?[.:])(\s|$)", text)
    return (match.group(1) if match else text).rstrip(":.") if text else _type_words(field)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")

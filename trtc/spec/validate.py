"""Schema validation that speaks to people: one line per problem with file, line, key path,
what was expected and, for a misspelt key or value, the closest valid one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from trtc.errors import closest
from trtc.spec import known_valid
from trtc.spec.schema import SPEC_SCHEMA

if TYPE_CHECKING:
    import jsonschema

# Maps a key path to "file:line" (or "--set a.b") for messages.
Locator = Callable[[tuple], str]


def schema_problems(document: Any, locate: Locator, schema: dict = SPEC_SCHEMA) -> list[str]:
    """Every schema violation in `document` (a spec, unless `schema` says otherwise), formatted, in document order."""
    key = known_valid.digest(document, schema) if schema is SPEC_SCHEMA else None
    if known_valid.validated_before(key):
        return []
    import jsonschema  # a fifth of a no-op build's time: only when the spec is new

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    lines: list[str] = []
    for error in errors:
        for path, text in _explain(error):
            line = f"{locate(path)}: {key_path(path) or '(top level)'}: {text}"
            if line not in lines:
                lines.append(line)
    if not lines:
        known_valid.remember_valid(key)
    return lines


def key_path(path: tuple) -> str:
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


def _explain(error: jsonschema.ValidationError) -> list[tuple[tuple, str]]:
    path = tuple(error.absolute_path)
    kind = error.validator
    schema = error.schema
    value = error.instance
    if kind == "additionalProperties":
        known = list(schema.get("properties", {}))
        out = []
        for extra in sorted(set(value) - set(known)):
            hint = closest(extra, known)
            advice = f"did you mean '{hint}'?" if hint else f"valid keys: {', '.join(known)}"
            out.append((path + (extra,), f"unknown key; {advice}"))
        return out
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return [(path, f"missing required key '{k}'") for k in missing]
    if kind == "enum":
        options = error.validator_value
        hint = closest(value, options) if isinstance(value, str) else None
        text = f"expected one of {', '.join(map(str, options))}; got {value!r}"
        return [(path, text + (f" (did you mean '{hint}'?)" if hint else ""))]
    if kind == "type":
        return [(path, f"expected {_type_words(error.validator_value)}; got {_describe(value)}")]
    if kind in ("oneOf", "anyOf"):
        return _explain_alternatives(error)
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return [(path, f"expected a number {sign} {error.validator_value}; got {value!r}")]
    if kind in ("minItems", "maxItems"):
        return [
            (
                path,
                f"expected {'at least' if kind == 'minItems' else 'at most'} {error.validator_value} item(s); got {len(value)}",
            )
        ]
    if kind == "uniqueItems":
        return [(path, "items must be unique")]
    if kind == "pattern":
        wanted = schema.get("x-expected") or f"a string matching {error.validator_value}"
        return [(path, f"expected {_lower_first(wanted)}; got {value!r}")]
    return [(path, error.message)]


def _explain_alternatives(error: jsonschema.ValidationError) -> list[tuple[tuple, str]]:
    """A value failed every branch of a oneOf. When it had the right type for one branch, the
    problem is inside that branch; otherwise say what the field accepts."""
    branches: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [errs for errs in branches.values() if _branch_fits(errs, error.instance)]
    wanted = error.schema.get("x-expected") or error.schema.get("description")
    if len(fitting) == 1:
        out: list[tuple[tuple, str]] = []
        for sub in fitting[0]:
            if sub.validator == "pattern" and wanted and len(sub.relative_schema_path) == 2:
                out.append(
                    (tuple(sub.absolute_path), f"expected {_lower_first(wanted)}; got {_describe(sub.instance)}")
                )
            else:
                out.extend(_explain(sub))
        return out
    path = tuple(error.absolute_path)
    if wanted:
        return [(path, f"expected {_lower_first(wanted)}; got {_describe(error.instance)}")]
    return [(path, error.message)]


def _branch_fits(branch_errors: list[jsonschema.ValidationError], instance: Any) -> bool:
    """Whether the instance has the kind of value this oneOf branch describes."""
    for sub in branch_errors:
        if len(sub.relative_schema_path) != 2:
            continue
        if sub.validator == "type":
            return False
        if sub.validator == "enum":
            return any(type(option) is type(instance) for option in sub.validator_value)
    return True


def _type_words(types) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "null": "nothing",
    }
    types = [types] if isinstance(types, str) else types
    return " or ".join(names.get(t, t) for t in types)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if value is None:
        return "nothing"
    return repr(value)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:].rstrip(".")

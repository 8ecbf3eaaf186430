"""The schema of a resource's ``spec``, declared by each driver as data, and the one checker.

A configuration file keeps ``spec`` open: it belongs to the driver that runs the resource. Each
driver declares, per resource kind it runs, which keys a spec may hold, their types, ranges and
enumerations, which are required, and the few rules between keys (``runCommand`` or ``command``,
an http health check needs a ``port``). ``check_spec`` checks a spec against that declaration and
returns every problem with its full path, so ``validate`` and ``apply`` refuse a file before anything
changes; ``spec_json_schema`` prints the same declaration as JSON Schema. Drivers parse their specs
at deploy time from the same declaration, so the two cannot drift apart.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from releaseflow.domain.errors import Issue

# ``command``: a non-empty string (run by a shell or split like one) or a non-empty list of strings.
# ``env``: a mapping of variable names to strings, numbers or booleans (YAML turns 8000 into a number).
# ``digits``: a string of digits or a non-negative integer, e.g. a major version "16" or 16.
ValueType = Literal["string", "integer", "number", "boolean", "command", "env", "digits", "object"]

_TYPE_WORDS: Mapping[ValueType, str] = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "command": "a command (a non-empty string, or a non-empty list of strings)",
    "env": "a mapping of variable names to strings, numbers or booleans",
    "digits": 'a whole number written as digits, e.g. "16"',
    "object": "a mapping",
}


@dataclass(frozen=True)
class Requires:
    """When ``key`` is set (to one of ``values``, if given), ``needs`` must be set too.

    ``key`` may reach into a nested mapping (``("healthCheck", "type")``); ``needs`` is a key of the
    mapping the rule belongs to.
    """

    key: tuple[str, ...]
    needs: str
    values: tuple[Any, ...] | None = None
    why: str = ""


@dataclass(frozen=True)
class Excludes:
    """``key`` and each of ``others`` cannot be set together."""

    key: str
    others: tuple[str, ...]
    why: str = ""


@dataclass(frozen=True)
class OneOf:
    """Exactly one of ``keys`` must be set (they are spellings of the same setting)."""

    keys: tuple[str, ...]
    why: str = ""


Rule = Requires | Excludes | OneOf


@dataclass(frozen=True)
class SpecField:
    """One key of a spec, or of a mapping nested in it."""

    type: ValueType
    description: str
    required: bool = False
    default: Any = None  # documentation only: what the driver uses when the key is absent
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    pattern: str | None = None  # the whole string must match
    pattern_rule: str = ""  # the pattern in words, for messages: "must be ..."
    forbidden: tuple[str, ...] = ()  # string values refused although they match the pattern
    forbidden_rule: str = ""  # why they are refused
    fields: Mapping[str, SpecField] = field(default_factory=dict)  # for ``object``
    rules: tuple[Rule, ...] = ()  # for ``object``


@dataclass(frozen=True)
class SpecSchema:
    """What one driver accepts in the spec of one resource kind."""

    driver: str
    kind: str  # a ResourceKind: service, job, addon, build_service
    description: str
    fields: Mapping[str, SpecField]
    rules: tuple[Rule, ...] = ()

    @property
    def name(self) -> str:
        """How ``releaseflow schema --resource`` names it: ``local/service``."""
        return f"{self.driver}/{self.kind}"

    def as_field(self) -> SpecField:
        return SpecField("object", self.description, fields=self.fields, rules=self.rules)


# Schemas by driver, then by resource kind; what the engine hands to the configuration parser.
SpecSchemas = Mapping[str, Mapping[str, SpecSchema]]


def check_spec(schema: SpecSchema, spec: Any, path: str) -> list[Issue]:
    """Every problem of ``spec`` against ``schema``, each at its path below ``path``."""
    return _check(schema.as_field(), spec, path)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(declared: SpecField, value: Any, path: str) -> list[Issue]:
    problem = _type_problem(declared, value)
    if problem:
        return [Issue(path, problem)]
    if declared.type == "object":
        return _check_object(declared, value, path)
    if declared.type == "env":
        return [
            Issue(_join(path, str(name)), "must be a string, number or boolean")
            for name, item in value.items()
            if not isinstance(item, str | int | float | bool)
        ]
    problem = _value_problem(declared, value)
    return [Issue(path, problem)] if problem else []


def _check_object(declared: SpecField, value: Mapping[str, Any], path: str) -> list[Issue]:
    issues: list[Issue] = []
    for key in value:
        if key not in declared.fields:
            issues.append(Issue(_join(path, str(key)), _unknown_key(str(key), declared.fields)))
    for key, child in declared.fields.items():
        if value.get(key) is not None:
            issues.extend(_check(child, value[key], _join(path, key)))
        elif child.required:
            issues.append(Issue(_join(path, key), f"is required ({child.description})"))
    for rule in declared.rules:
        issues.extend(_check_rule(rule, value, path))
    return issues


def _unknown_key(key: str, known: Mapping[str, SpecField]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if not close:
        # Case slips (``runcommand``) are too short for the ratio above but still obvious.
        close = [name for name in known if name.lower() == key.lower()]
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"is not a known key{hint} (known keys: {', '.join(sorted(known))})"


def _present(value: Mapping[str, Any], key: str) -> bool:
    return value.get(key) is not None


def _check_rule(rule: Rule, value: Mapping[str, Any], path: str) -> list[Issue]:
    why = f" ({rule.why})" if rule.why else ""
    if isinstance(rule, OneOf):
        given = [key for key in rule.keys if _present(value, key)]
        if not given:
            return [Issue(_join(path, rule.keys[0]), f"is required: set one of {', '.join(rule.keys)}{why}")]
        if len(given) > 1:
            return [Issue(_join(path, given[1]), f"and {given[0]} are the same setting: give only one{why}")]
        return []
    if isinstance(rule, Excludes):
        if not _present(value, rule.key):
            return []
        return [
            Issue(_join(path, other), f"cannot be set together with {rule.key}{why}")
            for other in rule.others
            if _present(value, other)
        ]
    found: Any = value
    for part in rule.key:
        found = found.get(part) if isinstance(found, Mapping) else None
    if found is None or (rule.values is not None and found not in rule.values):
        return []
    if _present(value, rule.needs):
        return []
    setting = ".".join(rule.key) + (f": {found}" if rule.values is not None else "")
    return [Issue(_join(path, rule.needs), f"is required with {setting}{why}")]


def _type_problem(declared: SpecField, value: Any) -> str | None:
    kind = declared.type
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    fits = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": is_number,
        "boolean": isinstance(value, bool),
        "command": (isinstance(value, str) and bool(value.strip()))
        or (
            isinstance(value, list)
            and bool(value)
            and all(isinstance(part, str) for part in value)
            and bool(value[0].strip())
        ),
        "env": isinstance(value, Mapping),
        "digits": (isinstance(value, str) and value.isdigit())
        or (isinstance(value, int) and not isinstance(value, bool) and value >= 0),
        "object": isinstance(value, Mapping),
    }[kind]
    if fits:
        return None
    return f"must be {_TYPE_WORDS[kind]}, not {_shown(value)}"


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return repr(value)


def _value_problem(declared: SpecField, value: Any) -> str | None:
    if declared.enum is not None and value not in declared.enum:
        return f"must be one of {', '.join(str(item) for item in declared.enum)}, not {value!r}"
    if isinstance(value, str):
        if declared.type == "string" and not value.strip():
            return "must not be empty"
        if declared.pattern is not None and not re.fullmatch(declared.pattern, value):
            return f"{declared.pattern_rule or 'must match ' + declared.pattern}, not {value!r}"
        if value in declared.forbidden:
            return f"cannot be {value!r} ({declared.forbidden_rule or 'reserved'})"
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high, above = declared.minimum, declared.maximum, declared.exclusive_minimum
        if low is not None and high is not None and not low <= value <= high:
            return f"must be between {low:g} and {high:g}, not {value!r}"
        if low is not None and value < low:
            return f"must be at least {low:g}, not {value!r}"
        if high is not None and value > high:
            return f"must be at most {high:g}, not {value!r}"
        if above is not None and value <= above:
            return f"must be greater than {above:g}, not {value!r}"
    return None


# -- JSON Schema ----------------------------------------------------------------------------------

_JSON_TYPES: Mapping[ValueType, dict[str, Any]] = {
    "string": {"type": "string", "minLength": 1},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "command": {
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "items": {"type": "string"}},
        ]
    },
    "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
    "digits": {"oneOf": [{"type": "string", "pattern": "^[0-9]+$"}, {"type": "integer", "minimum": 0}]},
}


def spec_json_schema(schema: SpecSchema) -> dict[str, Any]:
    """The declaration as JSON Schema (draft 2020-12), for editors and for ``releaseflow schema``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"releaseflow {schema.name} spec: {schema.description}",
        **_field_json(schema.as_field()),
    }


def _field_json(declared: SpecField) -> dict[str, Any]:
    if declared.type == "object":
        out: dict[str, Any] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {key: _field_json(child) for key, child in declared.fields.items()},
        }
        required = [key for key, child in declared.fields.items() if child.required]
        if required:
            out["required"] = required
        constraints = [_rule_json(rule) for rule in declared.rules]
        if constraints:
            out["allOf"] = constraints
    else:
        out = dict(_JSON_TYPES[declared.type])
    out["description"] = declared.description
    for key, value in (
        ("default", declared.default),
        ("enum", list(declared.enum) if declared.enum is not None else None),
        ("minimum", declared.minimum),
        ("maximum", declared.maximum),
        ("exclusiveMinimum", declared.exclusive_minimum),
        ("pattern", f"^(?:{declared.pattern})$" if declared.pattern else None),
        ("not", {"enum": list(declared.forbidden)} if declared.forbidden else None),
    ):
        if value is not None:
            out[key] = value
    return out


def _rule_json(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, OneOf):
        return {"oneOf": [{"required": [key]} for key in rule.keys]}
    if isinstance(rule, Excludes):
        return {
            "if": {"required": [rule.key]},
            "then": {"not": {"anyOf": [{"required": [o]} for o in rule.others]}},
        }
    condition: dict[str, Any] = {"required": [rule.key[-1]]}
    if rule.values is not None:
        condition["properties"] = {rule.key[-1]: {"enum": list(rule.values)}}
    for part in reversed(rule.key[:-1]):
        condition = {"required": [part], "properties": {part: condition}}
    return {"if": condition, "then": {"required": [rule.needs]}}


def describe_schema(schema: SpecSchema) -> str:
    """A readable listing of the keys, for ``releaseflow schema --resource`` in a terminal."""
    lines = [f"{schema.name}: {schema.description}"]
    lines.extend(_describe_fields(schema.as_field(), "  "))
    return "\n".join(lines)


def _describe_fields(declared: SpecField, indent: str) -> list[str]:
    lines: list[str] = []
    for key, child in declared.fields.items():
        facts = [child.type] + (["required"] if child.required else [])
        if child.enum is not None:
            facts.append("one of " + "|".join(str(item) for item in child.enum))
        if child.minimum is not None or child.maximum is not None:
            facts.append(f"{child.minimum if child.minimum is not None else ''}..{child.maximum or ''}")
        if child.default is not None:
            facts.append(f"default {child.default}")
        lines.append(f"{indent}{key} ({', '.join(facts)}): {child.description}")
        if child.type == "object":
            lines.extend(_describe_fields(child, indent + "  "))
    for rule in declared.rules:
        lines.append(f"{indent}rule: {_rule_words(rule)}")
    return lines


def _rule_words(rule: Rule) -> str:
    if isinstance(rule, OneOf):
        return f"exactly one of {', '.join(rule.keys)}"
    if isinstance(rule, Excludes):
        return f"{rule.key} excludes {', '.join(rule.others)}"
    when = ".".join(rule.key) + (f" in {'|'.join(str(v) for v in rule.values)}" if rule.values else "")
    return f"{when} needs {rule.needs}"

"""A small declarative language for the fields of the release flow format.

The format (``template_format``) is written once as a tree of these field specs. Three readers derive
from that single description: the structural validator (``validate``), the resource walker used by
``template_rules`` (``iter_fields``) and the JSON Schema generator (``to_json_schema``). Keeping them on
one description is what stops the parser and the published schema from drifting apart.

Expressions: any string containing ``${`` stands for a value computed at run time. Where a field says
``expr=True`` (the default for node fields) such a string is accepted in place of any type, and its
real type is checked when the run resolves it. Syntax errors of the expression itself are found by
``expressions.check_syntax``, not here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from releaseflow.domain.errors import Issue

# What the JSON Schema accepts for a value computed at run time (unanchored: "contains ${...}").
EXPRESSION_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"\$\{.*\}"}

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def is_expression(value: object) -> bool:
    """A string that holds (or tries to hold) a ``${...}`` expression."""
    return isinstance(value, str) and "${" in value


def join_path(path: str, key: object) -> str:
    """JSON path of ``key`` inside the object at ``path`` (``a.b``, or ``a["odd key"]``)."""
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    text = f'["{key}"]' if isinstance(key, str) else f"[{key!r}]"
    return f"{path}{text}"


def index_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _one_of(values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return f"must be '{values[0]}'"
    return "must be one of " + ", ".join(values)


class NodeValidator(Protocol):
    """Validates a nested node (steps of a workflow); implemented by the parser, which counts nodes."""

    def validate_node(self, value: object, path: str, issues: list[Issue]) -> None: ...


@dataclass(frozen=True)
class Field:
    description: str = ""
    # A ``${...}`` string is accepted instead of the declared type (checked at run time).
    expr: bool = True

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError


def validate(spec: Field, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
    """Append to ``issues`` every way ``value`` (at JSON path ``path``) departs from ``spec``."""
    if spec.expr and is_expression(value):
        return
    spec.check(value, path, issues, nodes)


def to_json_schema(spec: Field) -> dict[str, Any]:
    schema = spec.schema()
    # A plain string already admits expressions; anything narrower needs the alternative spelled out.
    if spec.expr and (schema.get("type") != "string" or set(schema) != {"type"}):
        schema = {"anyOf": [schema, EXPRESSION_SCHEMA]}
    if spec.description:
        schema["description"] = spec.description
    return schema


@dataclass(frozen=True)
class Str(Field):
    enum: tuple[str, ...] = ()
    pattern: str | None = None
    hint: str = ""  # what the pattern means, for the error message
    max_length: int | None = None
    # Which kind of resource this id names; ``template_rules`` checks it against the stage.
    resource: str | None = None

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        if not isinstance(value, str):
            issues.append(Issue(path, "must be a string"))
        elif self.enum and value not in self.enum:
            issues.append(Issue(path, _one_of(self.enum)))
        elif self.max_length is not None and len(value) > self.max_length:
            issues.append(Issue(path, f"must be at most {self.max_length} characters"))
        elif self.pattern is not None and not re.search(self.pattern, value):
            issues.append(Issue(path, f"must be {self.hint}" if self.hint else f"must match {self.pattern}"))

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        return schema


@dataclass(frozen=True)
class Command(Str):
    """Text a driver runs as a command (through ``sh -c``, or split into words like a shell would).

    Every ``${...}`` in it is written as one quoted shell word, so argument and reference values are
    data, never code; ``${fn.shellRaw(...)}`` opts out explicitly. The rule is in ``shell``.
    """


def command_paths(spec: Field, value: object, path: str) -> list[str]:
    """JSON paths of the command fields (``Command``) present in ``value``."""
    return [found.path for found in iter_fields(spec, value, path) if isinstance(found.spec, Command)]


@dataclass(frozen=True)
class Int(Field):
    minimum: int | None = None
    maximum: int | None = None

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        # bool is an int in Python but not in JSON.
        if isinstance(value, bool) or not isinstance(value, int):
            issues.append(
                Issue(path, "must be an integer" + (" or a ${...} expression" if self.expr else ""))
            )
        elif (
            self.minimum is not None
            and self.maximum is not None
            and not (self.minimum <= value <= self.maximum)
        ):
            issues.append(Issue(path, f"must be between {self.minimum} and {self.maximum}"))
        elif self.minimum is not None and value < self.minimum:
            issues.append(Issue(path, f"must be at least {self.minimum}"))
        elif self.maximum is not None and value > self.maximum:
            issues.append(Issue(path, f"must be at most {self.maximum}"))

    def schema(self) -> dict[str, Any]:
        return _bounded("integer", self.minimum, self.maximum)


@dataclass(frozen=True)
class Num(Field):
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            issues.append(Issue(path, "must be a number" + (" or a ${...} expression" if self.expr else "")))
        elif self.minimum is not None and value < self.minimum:
            issues.append(Issue(path, f"must be at least {self.minimum:g}"))
        elif self.maximum is not None and value > self.maximum:
            issues.append(Issue(path, f"must be at most {self.maximum:g}"))

    def schema(self) -> dict[str, Any]:
        return _bounded("number", self.minimum, self.maximum)


def _bounded(kind: str, minimum: float | None, maximum: float | None) -> dict[str, Any]:
    """A JSON Schema number type with the bounds that are set."""
    schema: dict[str, Any] = {"type": kind}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


@dataclass(frozen=True)
class Bool(Field):
    # Northflank writes some flags as the strings "true"/"false" (skipNodeExecution).
    string_bool: bool = False

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        if isinstance(value, bool):
            return
        if self.string_bool and value in ("true", "false"):
            return
        accepted = "true or false"
        if self.string_bool:
            accepted = 'true, false, "true", "false"'
        if self.expr:
            accepted += " or a ${...} expression"
        issues.append(Issue(path, f"must be {accepted}"))

    def schema(self) -> dict[str, Any]:
        if self.string_bool:
            return {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false"]}]}
        return {"type": "boolean"}


@dataclass(frozen=True)
class AnyJson(Field):
    """Free-form JSON (argument values, environment variables): not looked into."""

    expr: bool = False

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        return

    def schema(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Map(Field):
    """An object with free keys whose values all follow ``values``."""

    values: Field = field(default_factory=AnyJson)
    expr: bool = False

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        if not isinstance(value, Mapping):
            issues.append(Issue(path, "must be an object"))
            return
        for key, item in value.items():
            if not isinstance(key, str):
                issues.append(Issue(join_path(path, key), "keys must be strings"))
                continue
            validate(self.values, item, join_path(path, key), issues, nodes)

    def schema(self) -> dict[str, Any]:
        values = to_json_schema(self.values)
        schema: dict[str, Any] = {"type": "object"}
        if values:
            schema["additionalProperties"] = values
        return schema


@dataclass(frozen=True)
class Arr(Field):
    items: Field = field(default_factory=AnyJson)
    expr: bool = False

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        if not isinstance(value, list | tuple):
            issues.append(Issue(path, "must be a list"))
            return
        for index, item in enumerate(value):
            validate(self.items, item, index_path(path, index), issues, nodes)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": to_json_schema(self.items)}


@dataclass(frozen=True)
class Obj(Field):
    fields: Mapping[str, Field] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    # Pairs of fields that may not be set together (e.g. a build's branch and pullRequestId).
    exclusive: tuple[tuple[str, str], ...] = ()
    # Fields of the Northflank format that releaseflow refuses, with the reason shown to the user.
    unsupported: Mapping[str, str] = field(default_factory=dict)
    nullable: bool = False
    expr: bool = False

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        if value is None and self.nullable:
            return
        if not isinstance(value, Mapping):
            issues.append(Issue(path, "must be an object"))
            return
        for name in self.required:
            if name not in value:
                issues.append(Issue(join_path(path, name), "is required"))
        for key, item in value.items():
            child = join_path(path, key)
            if isinstance(key, str) and key in self.fields:
                validate(self.fields[key], item, child, issues, nodes)
            elif isinstance(key, str) and key in self.unsupported:
                issues.append(Issue(child, self.unsupported[key]))
            else:
                issues.append(Issue(child, "unknown field"))
        for first, second in self.exclusive:
            if first in value and second in value:
                issues.append(Issue(path, f"set either '{first}' or '{second}', not both"))

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: to_json_schema(spec) for name, spec in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        if self.exclusive:
            schema["allOf"] = [{"not": {"required": list(pair)}} for pair in self.exclusive]
        if self.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        return schema


@dataclass(frozen=True)
class Tagged(Field):
    """An object whose shape depends on one field (``tag``): Release ``type``, Action ``kind``..."""

    tag: str = "kind"
    variants: Mapping[str, Obj] = field(default_factory=dict)
    # Values of the tag that Northflank knows but releaseflow refuses, with the reason.
    unsupported: Mapping[str, str] = field(default_factory=dict)
    expr: bool = False

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        if not isinstance(value, Mapping):
            issues.append(Issue(path, "must be an object"))
            return
        tag_path = join_path(path, self.tag)
        if self.tag not in value:
            issues.append(Issue(tag_path, "is required"))
            return
        tag = value[self.tag]
        if isinstance(tag, str) and tag in self.unsupported:
            issues.append(Issue(tag_path, self.unsupported[tag]))
            return
        if not isinstance(tag, str) or tag not in self.variants:
            issues.append(Issue(tag_path, _one_of(tuple(self.variants))))
            return
        validate(self.variants[tag], value, path, issues, nodes)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "required": [self.tag],
            "properties": {self.tag: {"enum": list(self.variants)}},
            "allOf": [
                {
                    "if": {"properties": {self.tag: {"const": tag}}, "required": [self.tag]},
                    "then": to_json_schema(variant),
                }
                for tag, variant in self.variants.items()
            ],
        }


@dataclass(frozen=True)
class NodeRef(Field):
    """A nested node (a step of a workflow); validated by the parser, a ``$ref`` in the schema."""

    expr: bool = False

    def check(self, value: object, path: str, issues: list[Issue], nodes: NodeValidator) -> None:
        nodes.validate_node(value, path, issues)

    def schema(self) -> dict[str, Any]:
        return {"$ref": "#/$defs/node"}


@dataclass(frozen=True)
class FieldValue:
    """One field present in a document, with the spec that describes it (see ``iter_fields``)."""

    path: str
    spec: Field
    value: Any
    parent: Mapping[str, Any]


def iter_fields(spec: Field, value: object, path: str) -> Iterator[FieldValue]:
    """Every field present in ``value`` that ``spec`` describes (nested nodes are not entered)."""
    if isinstance(spec, Tagged) and isinstance(value, Mapping):
        tag = value.get(spec.tag)
        if isinstance(tag, str) and tag in spec.variants:
            yield from iter_fields(spec.variants[tag], value, path)
    elif isinstance(spec, Obj) and isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and key in spec.fields:
                child_spec = spec.fields[key]
                child_path = join_path(path, key)
                yield FieldValue(child_path, child_spec, item, value)
                yield from iter_fields(child_spec, item, child_path)
    elif isinstance(spec, Arr) and isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_fields(spec.items, item, index_path(path, index))

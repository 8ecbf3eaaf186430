"""Turning ``--arg``, ``--override`` and ``--release-override`` values into a run request's parts.

Every malformed value is reported at once, each under the flag and value that caused it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.overrides import parse_release_spec

SUBJECT = "command line"


def add_run_inputs(parser: argparse.ArgumentParser) -> None:
    """The flags that give a run its arguments and overrides (run, plan, resume)."""
    parser.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="run argument (repeatable)"
    )
    parser.add_argument(
        "--secret-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a secret run argument: stored encrypted, shown masked (repeatable)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="REF.FIELD=VALUE",
        help="set one spec field of the node with that ref, for this run (repeatable; VALUE may be JSON)",
    )
    parser.add_argument(
        "--release-override",
        action="append",
        default=[],
        metavar="TARGET=JSON",
        help="replace the spec of the Release nodes deploying to TARGET, for this run (repeatable)",
    )


def parse_run_inputs(
    arguments: Sequence[str], overrides: Sequence[str], release_overrides: Sequence[str]
) -> tuple[dict[str, str], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """All three flags of ``run`` at once, so that one error message lists every bad value."""
    issues: list[Issue] = []
    parsed = (
        _arguments(arguments, issues),
        _overrides(overrides, issues),
        _release_overrides(release_overrides, issues),
    )
    _raise(issues)
    return parsed


def parse_arguments(values: Sequence[str]) -> dict[str, str]:
    """``K=V`` pairs as run arguments; values are text (as in the template's ``arguments``)."""
    issues: list[Issue] = []
    arguments = _arguments(values, issues)
    _raise(issues)
    return arguments


def parse_overrides(values: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``REF.FIELD=VALUE``: set one field of the spec of the node with that ref, for this run only.

    VALUE is read as JSON when it is JSON (``2``, ``true``, ``{"a": 1}``); otherwise it is text.
    Quote it to force text: ``--override build.branch='"123"'``.
    """
    issues: list[Issue] = []
    overrides = _overrides(values, issues)
    _raise(issues)
    return overrides


def parse_release_overrides(values: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``TARGET=JSON``: a replacement spec (a JSON object) for every Release node deploying to TARGET."""
    issues: list[Issue] = []
    overrides = _release_overrides(values, issues)
    _raise(issues)
    return overrides


def _arguments(values: Sequence[str], issues: list[Issue]) -> dict[str, str]:
    arguments: dict[str, str] = {}
    for raw in values:
        key, equals, value = raw.partition("=")
        key = key.strip()
        if not equals or not key:
            issues.append(Issue(f"--arg {raw}", "expected KEY=VALUE, e.g. --arg branch=main"))
        elif key in arguments:
            issues.append(Issue(f"--arg {raw}", f"argument '{key}' is given twice"))
        else:
            arguments[key] = value
    return arguments


def _overrides(values: Sequence[str], issues: list[Issue]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for raw in values:
        target, equals, value = raw.partition("=")
        ref, dot, field = target.strip().partition(".")
        if not equals or not dot or not ref or not field:
            issues.append(
                Issue(f"--override {raw}", "expected REF.FIELD=VALUE, e.g. --override build.branch=devel")
            )
            continue
        patch = overrides.setdefault(ref, {})
        if field in patch:
            issues.append(Issue(f"--override {raw}", f"{ref}.{field} is given twice"))
            continue
        patch[field] = _json_or_text(value)
    return overrides


def _release_overrides(values: Sequence[str], issues: list[Issue]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for raw in values:
        target, equals, text = raw.partition("=")
        target = target.strip()
        flag = f"--release-override {raw}"
        if not equals or not target:
            issues.append(Issue(flag, 'expected TARGET=JSON, e.g. api=\'{"type":"registry",...}\''))
            continue
        spec = parse_release_spec(text, flag, issues)
        if spec is None:
            continue
        if target in overrides:
            issues.append(Issue(flag, f"target '{target}' is given twice"))
        else:
            overrides[target] = spec
    return overrides


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _raise(issues: list[Issue]) -> None:
    if issues:
        raise ValidationError(issues, subject=SUBJECT)

"""What differs between two runs of a stage: template, arguments, overrides, artifacts (pure)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class _Missing:
    """A key one side does not have (distinct from a value of null)."""

    def __repr__(self) -> str:
        return "(none)"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class ValueChange:
    key: str
    before: Any  # MISSING when only the second run has it
    after: Any  # MISSING when only the first run has it


def value_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[ValueChange]:
    """Keys whose value differs between two mappings, sorted by key."""
    return [
        ValueChange(key, before.get(key, MISSING), after.get(key, MISSING))
        for key in sorted(set(before) | set(after))
        if before.get(key, MISSING) != after.get(key, MISSING)
    ]


def document_diff(before: Any, after: Any, before_label: str, after_label: str) -> list[str]:
    """A unified diff of two JSON documents, as indented JSON (no lines when equal)."""
    return list(
        difflib.unified_diff(
            _lines(before), _lines(after), fromfile=before_label, tofile=after_label, lineterm=""
        )
    )


def _lines(document: Any) -> list[str]:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

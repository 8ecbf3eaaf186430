"""Secret argument values in what a run keeps: hidden behind markers, shown masked.

A run's secret arguments are stored encrypted (``engine.secrets``). Where a resolved value is kept
(a node's resolved code), each secret value is replaced by a marker naming its key: the worker puts
the value back when it needs the code again (``reveal``), and every reader shows ``MASK`` instead
(``mask``), without the key. Pure functions on JSON values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

MASK = "••••"
_MARKER = re.compile(r"⟦secret:([^⟧]*)⟧")


def marker(key: str) -> str:
    return f"⟦secret:{key}⟧"


def hide(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every occurrence of a secret value replaced by its key's marker (longest first,
    so a secret that contains another is hidden whole)."""
    pairs = sorted(((text, marker(key)) for key, text in secrets.items() if text), key=lambda p: -len(p[0]))
    return _map_strings(value, lambda text: _replace_all(text, pairs)) if pairs else value


def reveal(value: Any, secrets: Mapping[str, str]) -> Any:
    """The markers of ``hide`` put back to the values (a marker of an unknown key stays)."""
    if not secrets:
        return value
    return _map_strings(value, lambda text: _MARKER.sub(lambda m: secrets.get(m.group(1), m.group(0)), text))


def mask(value: Any) -> Any:
    """Every marker shown as ``MASK``: what any reader sees of a secret."""
    return _map_strings(value, lambda text: _MARKER.sub(MASK, text) if "⟦secret:" in text else text)


def secret_texts(arguments: Mapping[str, Any], secret_keys: Collection[str]) -> dict[str, str]:
    """The secret values of ``arguments`` as text, by key: what ``hide`` looks for (empty values hide
    nothing)."""
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key in secret_keys
        if (value := arguments.get(key)) not in (None, "")
    }


def mask_arguments(arguments: Mapping[str, Any], secret_keys: Collection[str]) -> dict[str, Any]:
    return {key: MASK if key in secret_keys else value for key, value in arguments.items()}


def _replace_all(text: str, pairs: list[tuple[str, str]]) -> str:
    for plain, hidden in pairs:
        text = text.replace(plain, hidden)
    return text


def _map_strings(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {key: _map_strings(item, change) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(item, change) for item in value]
    return value

"""The dry run: before any node starts, resolve every expression that can be resolved.

Only references to nodes (``${refs...}``) wait until those nodes have run; everything else — arguments,
functions, settings — must resolve now, or the run fails without touching anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from releaseflow.domain import expressions
from releaseflow.domain.errors import ExpressionError, Issue
from releaseflow.domain.template import DEFAULT_MAX_ATTEMPTS, Node, Template
from releaseflow.engine.templates import node_code


def dry_run(
    template: Template,
    arguments: Mapping[str, Any],
    *,
    now: datetime,
    secret_seed: str,
    refs: Mapping[str, Any] | None = None,
) -> list[Issue]:
    """Issues of every expression that cannot resolve before the first node; ``refs`` holds the
    values of the run's triggers (they are known from the start, so they are checked now)."""
    scope = expressions.Scope(args=arguments, refs=refs or {}, now=now, secret_seed=secret_seed)
    issues: list[Issue] = []
    for node in template.nodes():
        _, found = expressions.resolve_partially(node_code(node), scope, path=node.path)
        issues.extend(found)
    return issues


def initial_max_attempts(node: Node, arguments: Mapping[str, Any], now: datetime) -> int:
    """maxAttempts as far as it is known before the run; an expression over refs is settled at dispatch."""
    value = node.settings.max_attempts
    if isinstance(value, str):
        try:
            value = expressions.resolve(value, expressions.Scope(args=arguments, refs={}, now=now))
        except ExpressionError:
            return DEFAULT_MAX_ATTEMPTS
    return value if isinstance(value, int) and value >= 1 else DEFAULT_MAX_ATTEMPTS

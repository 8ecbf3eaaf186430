"""The one exception root of releaseflow, and the errors users see.

Every error that reaches a user (CLI, API, UI) is a ``ReleaseflowError``; errors from libraries are
wrapped into one at the boundary, with a message that says what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class ReleaseflowError(Exception):
    """Root of every error releaseflow raises on purpose."""


def describe_error(error: BaseException) -> str:
    """An exception as users should read it: its type name and its message, as written.

    Not ``repr``: that quotes the message, so a newline shows as ``\\n`` and quotes are escaped.
    A releaseflow error is its message alone (it already says what went wrong).
    """
    message = str(error).strip()
    if isinstance(error, ReleaseflowError):
        return message or type(error).__name__
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


@dataclass(frozen=True)
class Issue:
    """One problem in a document, at a JSON path such as ``spec.spec.steps[2].spec.target.id``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(ReleaseflowError):
    """A document (template, configuration file, request) is wrong; ``issues`` lists every problem."""

    def __init__(self, issues: Iterable[Issue], *, subject: str = "document") -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        self.subject = subject
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        count = len(self.issues)
        super().__init__(f"{subject} is invalid ({count} error{'s' if count != 1 else ''}):\n{lines}")


class ExpressionError(ReleaseflowError):
    """A ``${...}`` expression cannot be parsed or evaluated."""

    def __init__(self, message: str, *, expression: str = "") -> None:
        self.expression = expression
        self.reason = message
        super().__init__(f"{message} in '${{{expression}}}'" if expression else message)


class NotFoundError(ReleaseflowError):
    """A project, pipeline, stage, release flow, run or resource does not exist."""


class ConflictError(ReleaseflowError):
    """The request contradicts current state (a forbidden concurrent run, an illegal transition)."""


class StaleLeaseError(ReleaseflowError):
    """A worker answered for work it no longer holds: its lease expired or was taken over."""


class ForbiddenError(ReleaseflowError):
    """Who asks may not do this (the run's starter approving it, someone not among its approvers)."""

"""The deploy-time check of a resource's ``spec``, shared by every driver.

``validate`` and ``apply`` refuse a file whose specs do not match their driver's schemas, but a spec can
still reach a driver invalid: stored before the schema (or a key of it) existed, or edited in the
database. Every driver checks the spec against its declared schema before it acts, and refuses it the
same way: at once, not retryable (another attempt cannot fix a spec), naming every wrong key by its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from releaseflow.domain.errors import Issue
from releaseflow.domain.spec_schema import SpecSchema, check_spec
from releaseflow.platform.driver import DriverError, Resource

KIND_WORDS = {"service": "service", "job": "job", "addon": "addon", "build_service": "build service"}


class SpecError(DriverError):
    """A resource's spec cannot be used by its driver; another attempt cannot fix it."""

    def __init__(
        self,
        resource: Resource,
        driver: str,
        key: str,
        problem: str,
        *,
        kind: str | None = None,
        more: Sequence[Issue] = (),
    ) -> None:
        what = KIND_WORDS.get(kind or resource.kind, kind or resource.kind)
        where = f"spec.{key}" if key else "spec"
        # Every further problem the schema found, so one failed deploy tells the whole story.
        rest = "".join(f"; {issue.path} {issue.message}" for issue in more)
        super().__init__(
            f"{what} '{resource.id}' ({driver} driver): {where} {problem}{rest}", retryable=False
        )

    @classmethod
    def listing(cls, resource: Resource, driver: str, issues: Sequence[Issue]) -> SpecError:
        first, *rest = issues
        key = first.path.removeprefix("spec").removeprefix(".")
        return cls(resource, driver, key, first.message, more=rest)


def checked_spec(resource: Resource, schema: SpecSchema) -> Mapping[str, Any]:
    """The resource's spec, once it matches ``schema``; a ``SpecError`` listing every problem if not."""
    spec: Mapping[str, Any] = resource.spec or {}
    issues = check_spec(schema, spec, "spec")
    if issues:
        raise SpecError.listing(resource, schema.driver, issues)
    return spec

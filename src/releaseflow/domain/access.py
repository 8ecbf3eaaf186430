"""Who may do what: the roles a principal (an API token or a user) holds per project, and what each
role allows.

Roles are ordered: each one allows everything the roles below it allow. ``viewer`` reads;
``deployer`` also starts, aborts and rolls back runs and decides approvals; ``admin`` also changes
configuration (release flows) and manages tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from releaseflow.domain.errors import ReleaseflowError

# A grant for this "project" holds its role in every project (the admin token of a fresh server).
ALL_PROJECTS = "*"


class Role(StrEnum):
    VIEWER = "viewer"
    DEPLOYER = "deployer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank

    @classmethod
    def parse(cls, word: str) -> Role:
        try:
            return cls(word.strip().lower())
        except ValueError:
            known = ", ".join(role.value for role in cls)
            raise AccessError(f"unknown role '{word}' (known: {known})") from None


_RANKS = {Role.VIEWER: 1, Role.DEPLOYER: 2, Role.ADMIN: 3}


class AccessError(ReleaseflowError):
    """A token or role is wrong (unknown role, bad expiry); the request is refused."""


class Unauthenticated(ReleaseflowError):
    """No token, or one that is unknown, revoked or expired (HTTP 401)."""


class Forbidden(ReleaseflowError):
    """A valid token whose role or project does not allow the request (HTTP 403)."""


class PrincipalKind(StrEnum):
    TOKEN = "token"
    USER = "user"


@dataclass(frozen=True)
class Grant:
    """One role in one project (or in every project: ``ALL_PROJECTS``)."""

    project_id: str
    role: Role

    def covers(self, project_id: str) -> bool:
        return self.project_id in (ALL_PROJECTS, project_id)

    def describe(self) -> str:
        return f"{self.role} in {'every project' if self.project_id == ALL_PROJECTS else self.project_id}"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an API token (one grant) or a signed-in user (a grant per project),
    under the name runs and approvals record."""

    id: str
    name: str
    grants: tuple[Grant, ...]
    kind: PrincipalKind = PrincipalKind.TOKEN

    @classmethod
    def of_token(cls, token_id: str, name: str, project_id: str, role: Role) -> Principal:
        return cls(token_id, name, (Grant(project_id, role),))

    @classmethod
    def of_user(cls, user_id: str, name: str, grants: Sequence[Grant]) -> Principal:
        return cls(user_id, name, tuple(grants), PrincipalKind.USER)

    def role_in(self, project_id: str | None) -> Role | None:
        """The strongest role held in ``project_id`` (None: in any project); None when none is."""
        held = [g.role for g in self.grants if project_id is None or g.covers(project_id)]
        return max(held, key=lambda role: role.rank, default=None)

    def allows(self, needed: Role, project_id: str | None) -> bool:
        held = self.role_in(project_id)
        return held is not None and held.allows(needed)

    def sees(self, project_id: str) -> bool:
        return self.role_in(project_id) is not None

    @property
    def actor(self) -> str:
        """The name its actions and approvals are recorded under, and the one a run it started names as
        its starter (who may not approve that run): a user's name, or ``token:NAME`` for a token."""
        return self.name if self.kind is PrincipalKind.USER else f"token:{self.name}"

    def describe(self) -> str:
        return ", ".join(grant.describe() for grant in self.grants) or "no role"

    def check(self, needed: Role, project_id: str | None) -> None:
        """Raise ``Forbidden`` unless this principal holds ``needed`` (or more) in ``project_id``
        (None: a request about no one project, which a holder of that role in any project may make)."""
        held = self.role_in(project_id)
        who = f"{self.kind} '{self.name}'"
        if held is None and len(self.grants) == 1:
            raise Forbidden(f"{who} is for project '{self.grants[0].project_id}', not '{project_id}'")
        if held is None:
            where = "any project" if project_id is None else f"project '{project_id}'"
            raise Forbidden(f"{who} holds no role in {where} (its roles: {self.describe()})")
        if not held.allows(needed):
            raise Forbidden(f"{who} is a {held}; this needs the {needed} role or more")

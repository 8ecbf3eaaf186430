"""Who may do what: the roles an API token holds in a project, and what each role allows.

Roles are ordered: each one allows everything the roles below it allow. ``viewer`` reads;
``deployer`` also starts, aborts and rolls back runs and decides approvals; ``admin`` also changes
configuration (release flows) and manages tokens.
"""

from __future__ import annotations

from enum import StrEnum

from releaseflow.domain.errors import ReleaseflowError

# A token for this "project" holds its role in every project (the admin token of a fresh server).
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

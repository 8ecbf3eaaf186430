"""User accounts: create, change a password, grant and revoke roles, disable and enable, list, and
authenticate a name and password.

A user holds a role per project (or in every project), like tokens do; signed in, it is a
``Principal`` whose name runs and approvals record. Authentication answers the same for an unknown
name and a wrong password, after the same work (an scrypt hash either way), and a name tried and
failed ``FAILURES_BEFORE_LOCK`` times in a row is locked for a while, whether it exists or not.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from releaseflow.domain.access import ALL_PROJECTS, AccessError, Grant, Principal, Role, Unauthenticated
from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.passwords import (
    LONGEST_LOCK,
    NAME_PATTERN,
    PASSWORD_MAX,
    SALT_BYTES,
    check_password,
    hash_password,
    locked_until,
    password_matches,
    user_name,
)
from releaseflow.engine.clock import Clock
from releaseflow.engine.tokens import require_project
from releaseflow.store import users as user_store
from releaseflow.store.database import Database, Row, Transaction

# One answer for an unknown name and a wrong password: which one it was is not said.
SIGN_IN_REFUSED = "wrong user name or password"


@dataclass(frozen=True)
class UserView:
    id: str
    name: str
    created_by: str
    created_at: datetime
    password_changed_at: datetime
    disabled_at: datetime | None
    grants: tuple[Grant, ...]

    @property
    def state(self) -> str:
        return "active" if self.disabled_at is None else "disabled"

    def principal(self) -> Principal:
        return Principal.of_user(self.id, self.name, self.grants)

    @classmethod
    def from_row(cls, row: Row, roles: Sequence[Row]) -> UserView:
        return cls(
            id=row["id"],
            name=row["name"],
            created_by=row["created_by"],
            created_at=row["created_at"],
            password_changed_at=row["password_changed_at"],
            disabled_at=row["disabled_at"],
            grants=grants_of(roles),
        )


def grants_of(roles: Sequence[Row]) -> tuple[Grant, ...]:
    """The grants of ``user_roles`` rows."""
    return tuple(Grant(row["project_id"], Role(row["role"])) for row in roles)


async def _view(tx: Transaction, row: Row) -> UserView:
    return UserView.from_row(row, await user_store.roles_of(tx, [row["id"]]))


async def _existing(tx: Transaction, name: str) -> Row:
    row = await user_store.user_by_name(tx, user_name(name))
    if row is None:
        raise NotFoundError(f"no user named '{name}' (releaseflow user list shows them)")
    return row


async def _password_hash(password: str) -> str:
    check_password(password)
    # scrypt takes tens of milliseconds of CPU: off the event loop, so a sign-in does not stall others.
    return await asyncio.to_thread(hash_password, password, secrets.token_bytes(SALT_BYTES))


async def create_user(
    db: Database, clock: Clock, *, name: str, password: str, grants: Sequence[Grant], created_by: str
) -> UserView:
    name = user_name(name)
    password_hash = await _password_hash(password)
    now = clock.now()
    async with db.transaction() as tx:
        if await user_store.user_by_name(tx, name) is not None:
            raise ConflictError(f"a user named '{name}' exists already")
        for grant in grants:
            await require_project(tx, grant.project_id)
        user_id = uuid.uuid4().hex[:12]
        await user_store.insert_user(
            tx,
            {
                "id": user_id,
                "name": name,
                "password_hash": password_hash,
                "created_by": created_by,
                "created_at": now,
            },
        )
        for grant in grants:
            await user_store.grant(tx, user_id, grant.project_id, str(grant.role), now)
        return await _view(tx, await _existing(tx, name))


async def set_password(db: Database, clock: Clock, name: str, password: str) -> UserView:
    """Change the password; the user's sessions end (a password changed after a leak must lock the
    leaker out of the browser that is signed in too)."""
    password_hash = await _password_hash(password)
    now = clock.now()
    async with db.transaction() as tx:
        row = await _existing(tx, name)
        await user_store.set_password(tx, row["id"], password_hash, now)
        await user_store.revoke_sessions_of(tx, row["id"], now)
        return await _view(tx, await _existing(tx, name))


async def grant_role(db: Database, clock: Clock, name: str, grant: Grant) -> UserView:
    """Give the user ``grant``'s role in its project, replacing the role it held there."""
    async with db.transaction() as tx:
        row = await _existing(tx, name)
        await require_project(tx, grant.project_id)
        await user_store.grant(tx, row["id"], grant.project_id, str(grant.role), clock.now())
        return await _view(tx, row)


async def revoke_role(db: Database, name: str, project_id: str) -> UserView:
    async with db.transaction() as tx:
        row = await _existing(tx, name)
        if not await user_store.revoke_role(tx, row["id"], project_id):
            held = (await _view(tx, row)).principal().describe()
            where = "every project ('*')" if project_id == ALL_PROJECTS else f"project '{project_id}'"
            raise NotFoundError(f"the user '{row['name']}' holds no role in {where} (its roles: {held})")
        return await _view(tx, row)


async def disable_user(db: Database, clock: Clock, name: str) -> UserView:
    """Disable the user: it cannot sign in, and every session it has ends now."""
    async with db.transaction() as tx:
        row = await _existing(tx, name)
        await user_store.disable(tx, row["id"], clock.now())
        return await _view(tx, await _existing(tx, name))


async def enable_user(db: Database, name: str) -> UserView:
    async with db.transaction() as tx:
        row = await _existing(tx, name)
        await user_store.enable(tx, row["id"])
        return await _view(tx, await _existing(tx, name))


async def list_users(db: Database) -> list[UserView]:
    async with db.read() as tx:
        rows = await user_store.list_users(tx)
        roles = await user_store.roles_of(tx, [row["id"] for row in rows])
    return [UserView.from_row(row, [role for role in roles if role["user_id"] == row["id"]]) for row in rows]


@functools.cache
def _decoy_hash() -> str:
    """A hash no password matches, checked for unknown names so that they cost what known ones do."""
    return hash_password(secrets.token_urlsafe(16), secrets.token_bytes(SALT_BYTES))


async def authenticate(db: Database, clock: Clock, name: str, password: str) -> Principal:
    """The principal of a user signing in; ``Unauthenticated`` says why not (without saying whether
    an unknown name or a wrong password was the cause)."""
    now = clock.now()
    name = name.strip().lower()
    known_name = bool(NAME_PATTERN.match(name))
    async with db.read() as tx:
        streak = await user_store.failures_of(tx, name) if known_name else None
        row = await user_store.user_by_name(tx, name) if known_name else None
    until = None if streak is None else locked_until(streak["failures"], streak["last_failure_at"])
    if until is not None and until > now:
        raise Unauthenticated(
            f"too many failed sign-ins as '{name}': try again after {until:%H:%M:%S} UTC"
            f" ({int((until - now).total_seconds()) + 1} s)"
        )
    stored = _decoy_hash() if row is None else row["password_hash"]
    fits = len(password) <= PASSWORD_MAX
    matches = fits and await asyncio.to_thread(password_matches, password, stored)
    if row is None or not matches:
        if known_name:
            async with db.transaction() as tx:
                # A streak whose last failure is older than the longest lock is over: forget it.
                await user_store.forget_failures_before(tx, now - LONGEST_LOCK)
                await user_store.note_failure(tx, name, now)
        raise Unauthenticated(SIGN_IN_REFUSED)
    if row["disabled_at"] is not None:
        raise Unauthenticated(f"the user '{name}' is disabled (an admin can enable it again)")
    async with db.transaction() as tx:
        if streak is not None:
            await user_store.clear_failures(tx, name)
        return (await _view(tx, row)).principal()


def parse_grant(role: str, project_id: str | None) -> Grant:
    """A grant from the command line's ``--role`` and ``--project`` (default: every project)."""
    project = (project_id or ALL_PROJECTS).strip()
    if not project:
        raise AccessError("--project is empty: name a project, or '*' for every project")
    return Grant(project, Role.parse(role))

"""API tokens: create (the secret is returned once), list, revoke, and authenticate a request.

A token's secret is 32 random bytes; only its SHA-256 is stored (a slow hash adds nothing for a
secret of that strength, and every request checks one). A token holds one role in one project, or in
every project (``ALL_PROJECTS``).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from releaseflow.domain.access import ALL_PROJECTS, AccessError, Role, Unauthenticated

# The interfaces name the principal where they authenticate: here (it lives in the domain, beside
# the roles, because a signed-in user is one too).
from releaseflow.domain.access import Principal as Principal
from releaseflow.domain.errors import NotFoundError
from releaseflow.engine.clock import Clock
from releaseflow.store import catalog
from releaseflow.store import tokens as token_store
from releaseflow.store.database import Database, Row, Transaction

SECRET_PREFIX = "rf_"
NAME_LIMIT = 64
# A token's last use is written at most this often, so that reads do not each write a row.
LAST_USED_RESOLUTION = timedelta(minutes=1)
BOOTSTRAP_NAME = "initial admin"
INBOX_KEY = "inbox key"
FIRST_ADMIN_MARKER = "first admin token"


@dataclass(frozen=True)
class TokenView:
    id: str
    name: str
    project_id: str
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @classmethod
    def from_row(cls, row: Row) -> TokenView:
        return cls(
            id=row["id"],
            name=row["name"],
            project_id=row["project_id"],
            role=Role(row["role"]),
            created_by=row["created_by"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
            last_used_at=row["last_used_at"],
        )


@dataclass(frozen=True)
class CreatedToken:
    view: TokenView
    secret: str  # shown once: it is not stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


async def create_token(
    db: Database,
    clock: Clock,
    *,
    name: str,
    project_id: str,
    role: Role,
    created_by: str,
    expires_at: datetime | None = None,
) -> CreatedToken:
    async with db.transaction() as tx:
        return await _create(tx, clock, name, project_id, role, created_by, expires_at)


async def _create(
    tx: Transaction,
    clock: Clock,
    name: str,
    project_id: str,
    role: Role,
    created_by: str,
    expires_at: datetime | None,
) -> CreatedToken:
    name = name.strip()
    if not 1 <= len(name) <= NAME_LIMIT or not name.isprintable():
        raise AccessError(f"a token name is 1 to {NAME_LIMIT} printable characters")
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise AccessError(f"the expiry {expires_at.isoformat()} is already past")
    await require_project(tx, project_id)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    row: Row = {
        "id": uuid.uuid4().hex[:12],
        "name": name,
        "project_id": project_id,
        "role": str(role),
        "secret_hash": hash_secret(secret),
        "created_by": created_by,
        "created_at": now,
        "expires_at": expires_at,
    }
    await token_store.insert_token(tx, row)
    view = TokenView.from_row({**row, "revoked_at": None, "last_used_at": None})
    return CreatedToken(view, secret)


async def require_project(tx: Transaction, project_id: str) -> None:
    """Refuse a role in a project that does not exist (``ALL_PROJECTS`` always does)."""
    if project_id != ALL_PROJECTS:
        projects = [project["id"] for project in await catalog.list_projects(tx)]
        if project_id not in projects:
            raise NotFoundError(f"no project '{project_id}' (projects: {', '.join(projects) or 'none'})")


async def create_first_admin_token(db: Database, clock: Clock) -> CreatedToken | None:
    """An admin token for every project on the first start of a database; None ever after.

    A marker among the server's secrets records that it was made, so that servers starting together
    on one database make one, and a database whose tokens were all revoked gets none by itself.
    """
    async with db.transaction() as tx:
        if not await token_store.add_server_secret(tx, FIRST_ADMIN_MARKER, "created", clock.now()):
            return None
        return await _create(tx, clock, BOOTSTRAP_NAME, ALL_PROJECTS, Role.ADMIN, "releaseflow serve", None)


async def inbox_key(db: Database, clock: Clock, preset: str | None = None) -> str:
    """The key that lets a sender post to the message inbox without a token: ``preset`` (from the
    settings) when given, else the one this database keeps (made on first use)."""
    if preset:
        return preset
    async with db.transaction() as tx:
        await token_store.add_server_secret(tx, INBOX_KEY, secrets.token_urlsafe(24), clock.now())
    async with db.read() as tx:
        found = await token_store.server_secret(tx, INBOX_KEY)
    assert found is not None
    return found


async def list_tokens(db: Database) -> list[TokenView]:
    async with db.read() as tx:
        return [TokenView.from_row(row) for row in await token_store.list_tokens(tx)]


async def revoke_token(db: Database, clock: Clock, key: str) -> TokenView:
    """Revoke the token whose id or name is ``key`` (a name must be unambiguous)."""
    async with db.transaction() as tx:
        rows = await token_store.list_tokens(tx)
        matches = [row for row in rows if row["id"] == key] or [row for row in rows if row["name"] == key]
        if not matches:
            raise NotFoundError(f"no token with the id or name '{key}' (releaseflow token list shows them)")
        if len(matches) > 1:
            ids = ", ".join(row["id"] for row in matches)
            raise AccessError(f"several tokens are named '{key}' ({ids}); revoke one by its id")
        await token_store.revoke(tx, matches[0]["id"], clock.now())
        (row,) = [row for row in await token_store.list_tokens(tx) if row["id"] == matches[0]["id"]]
    return TokenView.from_row(row)


async def authenticate(db: Database, clock: Clock, secret: str) -> Principal:
    """The principal of a presented secret; ``Unauthenticated`` says why it is refused."""
    now = clock.now()
    async with db.read() as tx:
        row = await token_store.token_by_hash(tx, hash_secret(secret))
    if row is None:
        raise Unauthenticated("the token is not known to this server")
    view = TokenView.from_row(row)
    state = view.state(now)
    if state == "revoked":
        raise Unauthenticated(f"the token '{view.name}' was revoked")
    if state == "expired":
        assert view.expires_at is not None
        raise Unauthenticated(f"the token '{view.name}' expired at {view.expires_at.isoformat()}")
    if view.last_used_at is None or now - view.last_used_at >= LAST_USED_RESOLUTION:
        async with db.transaction() as tx:
            await token_store.note_use(tx, view.id, now)
    return Principal.of_token(view.id, view.name, view.project_id, view.role)

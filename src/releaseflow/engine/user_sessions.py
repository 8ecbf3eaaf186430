"""Web sessions of signed-in users: opened at sign-in, checked on every request, ended at sign-out.

A session's secret is 32 random bytes the browser keeps in a cookie; only its SHA-256 is stored (as
for tokens, a slow hash adds nothing for a secret of that strength). A session ends at its expiry,
when it is signed out, and when its user is disabled or changes password. The user's roles are read
on every request, so a revoked role takes effect at once.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from releaseflow.domain.access import Principal, Unauthenticated
from releaseflow.engine import users
from releaseflow.engine.clock import Clock
from releaseflow.engine.tokens import hash_secret
from releaseflow.store import users as user_store
from releaseflow.store.database import Database

# Tells a session's secret from an API token's (``rf_``) in the one cookie both can sign in with.
SESSION_PREFIX = "rfs_"
SESSION_LIFETIME = timedelta(hours=12)
# Ended sessions are deleted once they are this old (kept a while to tell "signed out" from "unknown").
ENDED_KEPT = timedelta(days=1)


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    secret: str  # for the cookie: it is not stored


def is_session_secret(secret: str) -> bool:
    return secret.startswith(SESSION_PREFIX)


async def sign_in(db: Database, clock: Clock, name: str, password: str) -> SignedIn:
    """Authenticate the user and open a session for it."""
    principal = await users.authenticate(db, clock, name, password)
    now = clock.now()
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    async with db.transaction() as tx:
        await user_store.delete_sessions_ended_before(tx, now - ENDED_KEPT)
        await user_store.insert_session(
            tx,
            {
                "id": uuid.uuid4().hex[:12],
                "user_id": principal.id,
                "secret_hash": hash_secret(secret),
                "created_at": now,
                "expires_at": now + SESSION_LIFETIME,
            },
        )
    return SignedIn(principal, secret)


async def authenticate(db: Database, clock: Clock, secret: str) -> Principal:
    """The user a session's secret signs in; ``Unauthenticated`` says why it no longer does."""
    async with db.read() as tx:
        row = await user_store.session_by_hash(tx, hash_secret(secret))
        roles = await user_store.roles_of(tx, [row["user_id"]]) if row is not None else []
    if row is None:
        raise Unauthenticated("the session is not known to this server: sign in again")
    if row["revoked_at"] is not None:
        raise Unauthenticated("the session was signed out: sign in again")
    if row["user_disabled_at"] is not None:
        raise Unauthenticated(f"the user '{row['user_name']}' is disabled")
    if row["expires_at"] <= clock.now():
        raise Unauthenticated(f"the session expired at {row['expires_at']:%Y-%m-%d %H:%M} UTC: sign in again")
    return Principal.of_user(row["user_id"], row["user_name"], users.grants_of(roles))


async def sign_out(db: Database, clock: Clock, secret: str) -> None:
    """End the session (signing out twice, or with an unknown secret, changes nothing)."""
    async with db.transaction() as tx:
        await user_store.revoke_session(tx, hash_secret(secret), clock.now())

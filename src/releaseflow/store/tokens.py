"""API tokens as rows: found by the hash of their secret, never by the secret itself."""

from __future__ import annotations

from datetime import datetime

from releaseflow.store.database import Row, Transaction, to_epoch, with_times

_TIMES = ("created_at", "expires_at", "revoked_at", "last_used_at")


def _row(row: Row) -> Row:
    return with_times(row, _TIMES)


async def insert_token(tx: Transaction, token: Row) -> None:
    await tx.execute(
        "INSERT INTO api_tokens (id, name, project_id, role, secret_hash, created_by, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            token["id"],
            token["name"],
            token["project_id"],
            token["role"],
            token["secret_hash"],
            token["created_by"],
            to_epoch(token["created_at"]),
            to_epoch(token["expires_at"]),
        ),
    )


async def token_by_hash(tx: Transaction, secret_hash: str) -> Row | None:
    row = await tx.fetchone("SELECT * FROM api_tokens WHERE secret_hash = ?", (secret_hash,))
    return None if row is None else _row(row)


async def list_tokens(tx: Transaction) -> list[Row]:
    return [_row(row) for row in await tx.fetchall("SELECT * FROM api_tokens ORDER BY created_at, id")]


async def revoke(tx: Transaction, token_id: str, now: datetime) -> int:
    """Revoke the token (a revoked one keeps its first revocation time); the rows changed."""
    return await tx.execute(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (to_epoch(now), token_id)
    )


async def server_secret(tx: Transaction, name: str) -> str | None:
    value = await tx.fetchvalue("SELECT value FROM server_secrets WHERE name = ?", (name,))
    return None if value is None else str(value)


async def add_server_secret(tx: Transaction, name: str, value: str, now: datetime) -> bool:
    """Keep ``value`` unless the secret exists already (two servers starting together keep one);
    whether this call stored it."""
    stored = await tx.execute(
        "INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        (name, value, to_epoch(now)),
    )
    return stored > 0


async def note_use(tx: Transaction, token_id: str, now: datetime) -> None:
    await tx.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (to_epoch(now), token_id))

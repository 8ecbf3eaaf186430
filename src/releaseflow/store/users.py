"""User accounts as rows: users, their roles per project, web sessions (found by the hash of their
secret), and the failed sign-ins per name."""

from __future__ import annotations

from datetime import datetime

from releaseflow.store.database import Row, Transaction, to_epoch, with_times

_USER_TIMES = ("created_at", "password_changed_at", "disabled_at")
_SESSION_TIMES = ("created_at", "expires_at", "revoked_at")


async def insert_user(tx: Transaction, user: Row) -> None:
    await tx.execute(
        "INSERT INTO users (id, name, password_hash, created_by, created_at, password_changed_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            user["id"],
            user["name"],
            user["password_hash"],
            user["created_by"],
            to_epoch(user["created_at"]),
            to_epoch(user["created_at"]),
        ),
    )


async def user_by_name(tx: Transaction, name: str) -> Row | None:
    row = await tx.fetchone("SELECT * FROM users WHERE name = ?", (name,))
    return None if row is None else with_times(row, _USER_TIMES)


async def list_users(tx: Transaction) -> list[Row]:
    rows = await tx.fetchall("SELECT * FROM users ORDER BY name")
    return [with_times(row, _USER_TIMES) for row in rows]


async def set_password(tx: Transaction, user_id: str, password_hash: str, now: datetime) -> None:
    await tx.execute(
        "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ?",
        (password_hash, to_epoch(now), user_id),
    )


async def disable(tx: Transaction, user_id: str, now: datetime) -> None:
    """Disable the user (keeping the first time it was) and end every session it has."""
    await tx.execute(
        "UPDATE users SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ?", (to_epoch(now), user_id)
    )
    await revoke_sessions_of(tx, user_id, now)


async def enable(tx: Transaction, user_id: str) -> None:
    await tx.execute("UPDATE users SET disabled_at = NULL WHERE id = ?", (user_id,))


async def roles_of(tx: Transaction, user_ids: list[str]) -> list[Row]:
    """The (user_id, project_id, role) rows of these users, by user then project."""
    if not user_ids:
        return []
    marks = ", ".join("?" for _ in user_ids)
    return await tx.fetchall(
        f"SELECT user_id, project_id, role FROM user_roles WHERE user_id IN ({marks})"
        " ORDER BY user_id, project_id",
        user_ids,
    )


async def grant(tx: Transaction, user_id: str, project_id: str, role: str, now: datetime) -> None:
    await tx.execute(
        "INSERT INTO user_roles (user_id, project_id, role, granted_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, project_id)"
        " DO UPDATE SET role = excluded.role, granted_at = excluded.granted_at",
        (user_id, project_id, role, to_epoch(now)),
    )


async def revoke_role(tx: Transaction, user_id: str, project_id: str) -> int:
    return await tx.execute(
        "DELETE FROM user_roles WHERE user_id = ? AND project_id = ?", (user_id, project_id)
    )


async def insert_session(tx: Transaction, session: Row) -> None:
    await tx.execute(
        "INSERT INTO web_sessions (id, user_id, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        (
            session["id"],
            session["user_id"],
            session["secret_hash"],
            to_epoch(session["created_at"]),
            to_epoch(session["expires_at"]),
        ),
    )


async def session_by_hash(tx: Transaction, secret_hash: str) -> Row | None:
    """The session and its user's name and disabled time (``user_name``, ``user_disabled_at``)."""
    row = await tx.fetchone(
        "SELECT s.*, u.name AS user_name, u.disabled_at AS user_disabled_at"
        " FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = ?",
        (secret_hash,),
    )
    return None if row is None else with_times(row, (*_SESSION_TIMES, "user_disabled_at"))


async def revoke_session(tx: Transaction, secret_hash: str, now: datetime) -> int:
    return await tx.execute(
        "UPDATE web_sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE secret_hash = ?",
        (to_epoch(now), secret_hash),
    )


async def revoke_sessions_of(tx: Transaction, user_id: str, now: datetime) -> int:
    return await tx.execute(
        "UPDATE web_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        (to_epoch(now), user_id),
    )


async def delete_sessions_ended_before(tx: Transaction, moment: datetime) -> int:
    """Forget sessions that expired or were revoked before ``moment`` (nothing can use them)."""
    cutoff = to_epoch(moment)
    return await tx.execute(
        "DELETE FROM web_sessions WHERE expires_at < ? OR revoked_at < ?", (cutoff, cutoff)
    )


async def failures_of(tx: Transaction, name: str) -> Row | None:
    row = await tx.fetchone("SELECT * FROM sign_in_failures WHERE name = ?", (name,))
    return None if row is None else with_times(row, ("last_failure_at",))


async def note_failure(tx: Transaction, name: str, now: datetime) -> None:
    await tx.execute(
        "INSERT INTO sign_in_failures (name, failures, last_failure_at) VALUES (?, 1, ?)"
        " ON CONFLICT (name) DO UPDATE SET failures = sign_in_failures.failures + 1,"
        " last_failure_at = excluded.last_failure_at",
        (name, to_epoch(now)),
    )


async def clear_failures(tx: Transaction, name: str) -> None:
    await tx.execute("DELETE FROM sign_in_failures WHERE name = ?", (name,))


async def forget_failures_before(tx: Transaction, moment: datetime) -> int:
    """Forget failure streaks whose last failure is older than ``moment`` (their lock is over)."""
    return await tx.execute("DELETE FROM sign_in_failures WHERE last_failure_at < ?", (to_epoch(moment),))

"""What triggers keep: the trigger log, webhook tokens, accepted deliveries and watched git heads."""

from __future__ import annotations

from datetime import datetime

from releaseflow.store.database import Row, Transaction, from_epoch, to_epoch
from releaseflow.store.records import FlowRecord


async def log_request(
    tx: Transaction,
    flow_id: str,
    *,
    source: str,
    request: str,
    decision: str,
    reason: str,
    run_id: str | None,
    at: datetime,
) -> None:
    await tx.execute(
        "INSERT INTO trigger_log (flow_id, source, request, decision, reason, run_id, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (flow_id, source, request, decision, reason, run_id, to_epoch(at)),
    )


async def trigger_log(tx: Transaction, flow_id: str, limit: int) -> list[Row]:
    rows = await tx.fetchall(
        "SELECT * FROM trigger_log WHERE flow_id = ? ORDER BY id DESC LIMIT ?", (flow_id, limit)
    )
    return [{**row, "at": from_epoch(row["at"])} for row in rows]


async def webhook_token(tx: Transaction, flow_id: str) -> str | None:
    value = await tx.fetchvalue("SELECT token FROM webhook_tokens WHERE flow_id = ?", (flow_id,))
    return None if value is None else str(value)


async def set_webhook_token(tx: Transaction, flow_id: str, token: str, token_hash: str, at: datetime) -> None:
    await tx.execute("DELETE FROM webhook_tokens WHERE flow_id = ?", (flow_id,))
    await tx.execute(
        "INSERT INTO webhook_tokens (flow_id, token_hash, token, created_at) VALUES (?, ?, ?, ?)",
        (flow_id, token_hash, token, to_epoch(at)),
    )


async def flow_by_token_hash(tx: Transaction, token_hash: str) -> tuple[FlowRecord, str] | None:
    """The live flow whose webhook token has this hash, with the token (to compare in constant time)."""
    row = await tx.fetchone(
        "SELECT f.*, w.token AS webhook_token FROM webhook_tokens w JOIN release_flows f ON f.id = w.flow_id"
        " WHERE w.token_hash = ? AND f.archived_at IS NULL",
        (token_hash,),
    )
    return None if row is None else (FlowRecord.from_row(row), str(row["webhook_token"]))


async def accept_delivery(tx: Transaction, provider: str, delivery_id: str, at: datetime) -> bool:
    """Remember a delivery; False when it was accepted before (a replay)."""
    inserted = await tx.execute(
        "INSERT INTO webhook_deliveries (provider, delivery_id, at) VALUES (?, ?, ?)"
        " ON CONFLICT (provider, delivery_id) DO NOTHING",
        (provider, delivery_id, to_epoch(at)),
    )
    return inserted > 0


async def live_flows(tx: Transaction) -> list[FlowRecord]:
    rows = await tx.fetchall("SELECT * FROM release_flows WHERE archived_at IS NULL ORDER BY id")
    return [FlowRecord.from_row(row) for row in rows]


async def git_heads(tx: Transaction, repository: str) -> dict[str, str]:
    rows = await tx.fetchall("SELECT branch, sha FROM git_watch_heads WHERE repository = ?", (repository,))
    return {row["branch"]: row["sha"] for row in rows}


async def move_git_head(
    tx: Transaction, repository: str, branch: str, old: str | None, new: str, at: datetime
) -> bool:
    """Record that the branch moved from ``old`` (None: it was not known) to ``new``; False when
    another process recorded a move first (so each move is decided once, whoever polls)."""
    if old is None:
        sql = (
            "INSERT INTO git_watch_heads (repository, branch, sha, seen_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (repository, branch) DO NOTHING"
        )
        return await tx.execute(sql, (repository, branch, new, to_epoch(at))) > 0
    sql = "UPDATE git_watch_heads SET sha = ?, seen_at = ? WHERE repository = ? AND branch = ? AND sha = ?"
    return await tx.execute(sql, (new, to_epoch(at), repository, branch, old)) > 0

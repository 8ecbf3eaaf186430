"""Runs, node runs and their event log.

Status columns are written only through ``releaseflow.engine.transitions``; the functions here that
touch them take the status the caller expects, so a lost race changes nothing and is noticed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from releaseflow.domain.statuses import ACTIVE_RUN_STATUSES, RunStatus
from releaseflow.store.database import Row, Transaction, to_epoch
from releaseflow.store.records import EventRecord, NodeRecord, RunNodes, RunRecord, dump_json, load_json

# Columns whose values are JSON in the database.
_JSON_COLUMNS = frozenset(
    {
        "arguments",
        "overrides",
        "release_node_overrides",
        "document",
        "code",
        "data",
        "error",
        "attempts",
        "wait_state",
        "plan",
        "trigger_refs",
        "secret_arguments",
    }
)


def encode(column: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return to_epoch(value)
    if column in _JSON_COLUMNS and value is not None:
        return dump_json(value)
    return value


async def next_run_seq(tx: Transaction, flow_id: str) -> int:
    await tx.lock_row("release_flows", "id", flow_id)
    seq = int(await tx.fetchvalue("SELECT next_run_seq FROM release_flows WHERE id = ?", (flow_id,)))
    await tx.execute("UPDATE release_flows SET next_run_seq = ? WHERE id = ?", (seq + 1, flow_id))
    return seq


async def insert_run(tx: Transaction, values: Mapping[str, Any]) -> None:
    await _insert(tx, "runs", values)


async def insert_node_runs(tx: Transaction, rows: Iterable[Mapping[str, Any]]) -> None:
    """Insert the node rows of a new run in one statement batch (they share their columns)."""
    rows = list(rows)
    if not rows:
        return
    columns = list(rows[0])
    placeholders = ", ".join("?" for _ in columns)
    await tx.executemany(
        f"INSERT INTO node_runs ({', '.join(columns)}) VALUES ({placeholders})",
        [[encode(column, row[column]) for column in columns] for row in rows],
    )


async def _insert(tx: Transaction, table: str, values: Mapping[str, Any]) -> None:
    columns = list(values)
    placeholders = ", ".join("?" for _ in columns)
    await tx.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})",
        [encode(column, values[column]) for column in columns],
    )


async def update_run(
    tx: Transaction, run_id: str, expected_status: RunStatus | None, fields: Mapping[str, Any]
) -> bool:
    """Write ``fields`` of a run if its status is still ``expected_status`` (None: any)."""
    return await _update(tx, "runs", "id", run_id, expected_status, fields)


async def update_node(
    tx: Transaction,
    node_id: str,
    expected_status: str | None,
    fields: Mapping[str, Any],
    *,
    lease: tuple[str, int] | None = None,
) -> bool:
    """Write ``fields`` of a node if its status is still ``expected_status`` (None: any) and, with
    ``lease`` (owner, token), only while that lease still holds it: a fenced write."""
    if lease is None:
        return await _update(tx, "node_runs", "id", node_id, expected_status, fields)
    assignments = ", ".join(f"{column} = ?" for column in fields)
    params = [encode(column, value) for column, value in fields.items()]
    sql = f"UPDATE node_runs SET {assignments} WHERE id = ? AND lease_owner = ? AND lease_token = ?"
    params += [node_id, lease[0], lease[1]]
    if expected_status is not None:
        sql += " AND status = ?"
        params.append(str(expected_status))
    return await tx.execute(sql, params) == 1


async def _update(
    tx: Transaction,
    table: str,
    key: str,
    key_value: str,
    expected_status: str | None,
    fields: Mapping[str, Any],
) -> bool:
    assignments = ", ".join(f"{column} = ?" for column in fields)
    params = [encode(column, value) for column, value in fields.items()]
    sql = f"UPDATE {table} SET {assignments} WHERE {key} = ?"
    params.append(key_value)
    if expected_status is not None:
        sql += " AND status = ?"
        params.append(str(expected_status))
    return await tx.execute(sql, params) == 1


async def make_due(tx: Transaction, node_ids: Sequence[str], now: datetime) -> None:
    """Hand pending leaves to the workers: claimable from ``now`` (not a status change)."""
    marks = ", ".join("?" for _ in node_ids)
    await tx.execute(
        f"UPDATE node_runs SET due_at = ?, became_due_at = ? WHERE id IN ({marks})",
        [to_epoch(now), to_epoch(now), *node_ids],
    )


def append_event(
    tx: Transaction,
    run_id: str,
    node_path: str | None,
    at: datetime,
    from_status: str | None,
    to_status: str,
    cause: str,
) -> None:
    tx.defer_insert(
        "INSERT INTO events (run_id, node_path, at, from_status, to_status, cause) VALUES (?, ?, ?, ?, ?, ?)",
        (run_id, node_path, to_epoch(at), from_status, to_status, cause),
    )


async def lock_run(tx: Transaction, run_id: str) -> RunRecord | None:
    """Read a run and hold its lock until the transaction ends (one round trip on PostgreSQL).

    Every writer of a run's state takes this lock first, so that writers of one run never interleave.
    """
    if tx.dialect == "postgresql":
        row = await tx.fetchone("SELECT * FROM runs WHERE id = ? FOR UPDATE", (run_id,))
        return None if row is None else RunRecord.from_row(row)
    await tx.lock_row("runs", "id", run_id)  # SQLite: the transaction holds the one write lock
    return await get_run(tx, run_id)


async def get_run(tx: Transaction, run_id: str) -> RunRecord | None:
    row = await tx.fetchone("SELECT * FROM runs WHERE id = ?", (run_id,))
    return None if row is None else RunRecord.from_row(row)


# "+seq", not "seq": ordered by seq, SQLite reads the runs of a flow through the (flow_id, seq) index,
# every run the flow ever had, to skip a sort; the unary plus makes it look the few active or queued
# runs up by (flow_id, status) and sort those. Starting a run of a flow with 100,000 runs took 50 ms
# before (tests/benchmarks/history_bench.py). PostgreSQL reads +seq as seq.
_BY_SEQ_AFTER_STATUS = "+seq"


async def runs_holding_slot(tx: Transaction, flow_id: str) -> list[RunRecord]:
    """Active runs of a flow (they hold its concurrency slot), oldest first."""
    statuses = [str(status) for status in ACTIVE_RUN_STATUSES]
    marks = ", ".join("?" for _ in statuses)
    rows = await tx.fetchall(
        f"SELECT * FROM runs WHERE flow_id = ? AND status IN ({marks}) ORDER BY {_BY_SEQ_AFTER_STATUS}",
        [flow_id, *statuses],
    )
    return [RunRecord.from_row(row) for row in rows]


async def queued_runs(tx: Transaction, flow_id: str) -> list[RunRecord]:
    rows = await tx.fetchall(
        f"SELECT * FROM runs WHERE flow_id = ? AND status = ? ORDER BY {_BY_SEQ_AFTER_STATUS}",
        (flow_id, str(RunStatus.QUEUED)),
    )
    return [RunRecord.from_row(row) for row in rows]


async def load_nodes(tx: Transaction, run_id: str) -> list[NodeRecord]:
    rows = await tx.fetchall("SELECT * FROM node_runs WHERE run_id = ?", (run_id,))
    return [NodeRecord.from_row(row) for row in rows]


async def node_ids(tx: Transaction, run_id: str) -> dict[str, str]:
    """The ids of a run's node rows by path (they never change once the run exists)."""
    rows = await tx.fetchall("SELECT id, path FROM node_runs WHERE run_id = ?", (run_id,))
    return {row["path"]: row["id"] for row in rows}


async def load_node_states(tx: Transaction, run_id: str, ids: dict[str, str]) -> RunNodes:
    """What progress planning needs of every node of a run (``ids``: its node rows by path).

    Only rows that differ from a node not yet started (pending, never handed to a worker) are read:
    planning reads them on every step of a run, so a long chain reads what has moved, not all of it.
    """
    rows = await tx.fetchall(
        "SELECT path, status, became_due_at FROM node_runs"
        " WHERE run_id = ? AND (status <> 'pending' OR became_due_at IS NOT NULL)",
        (run_id,),
    )
    return RunNodes.from_rows(ids, rows)


async def get_node(tx: Transaction, node_id: str) -> NodeRecord | None:
    row = await tx.fetchone("SELECT * FROM node_runs WHERE id = ?", (node_id,))
    return None if row is None else NodeRecord.from_row(row)


async def node_outputs(tx: Transaction, run_id: str, refs: Iterable[str]) -> dict[str, Any]:
    """The response data of the named nodes of a run that have produced some."""
    wanted = sorted(set(refs))
    if not wanted:
        return {}
    rows = await tx.fetchall(
        f"SELECT ref, data FROM node_runs WHERE run_id = ? AND ref IN ({', '.join('?' for _ in wanted)})"
        " AND data IS NOT NULL",
        [run_id, *wanted],
    )
    return {row["ref"]: load_json(row["data"]) for row in rows}


async def list_events(tx: Transaction, run_id: str, *, after_id: int = 0) -> list[EventRecord]:
    rows = await tx.fetchall(
        "SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id", (run_id, after_id)
    )
    return [EventRecord.from_row(row) for row in rows]


async def list_flow_events(
    tx: Transaction, flow_id: str, *, after_id: int = 0, limit: int = 500
) -> list[EventRecord]:
    """The events of every run of one flow (a stage) after ``after_id``, oldest first."""
    rows = await tx.fetchall(
        "SELECT events.* FROM events JOIN runs ON runs.id = events.run_id"
        " WHERE runs.flow_id = ? AND events.id > ? ORDER BY events.id LIMIT ?",
        (flow_id, after_id, limit),
    )
    return [EventRecord.from_row(row) for row in rows]


async def find_runs_by_prefix(tx: Transaction, prefix: str) -> list[str]:
    rows = await tx.fetchall("SELECT id FROM runs WHERE id LIKE ? ORDER BY id LIMIT 5", (prefix + "%",))
    return [row["id"] for row in rows]


_OUTLINE = "SELECT id, name, kind, status, rollback_of, created_at, concluded_at FROM runs"


async def run_outlines(tx: Transaction, flow_id: str, *, concluded_since: float | None = None) -> list[Row]:
    """The runs of a flow, oldest first, without their documents: what history figures are made of.
    ``concluded_since``: only those that concluded then or later, or have not concluded."""
    if concluded_since is None:
        return await tx.fetchall(f"{_OUTLINE} WHERE flow_id = ? ORDER BY seq", (flow_id,))
    return await tx.fetchall(
        f"{_OUTLINE} WHERE flow_id = ? AND (concluded_at >= ? OR concluded_at IS NULL) ORDER BY seq",
        (flow_id, concluded_since),
    )


async def rollback_targets(tx: Transaction, flow_id: str, *, concluded_since: float) -> list[Row]:
    """The outlines of the runs that the rollbacks among ``run_outlines(concluded_since=...)`` return
    to, oldest first."""
    return await tx.fetchall(
        f"{_OUTLINE} WHERE id IN (SELECT rollback_of FROM runs WHERE flow_id = ? AND rollback_of IS NOT NULL"
        " AND (concluded_at >= ? OR concluded_at IS NULL)) ORDER BY seq",
        (flow_id, concluded_since),
    )


async def last_verdict_before(tx: Transaction, flow_id: str, before: float) -> float | None:
    """When the last run of the flow that concluded before ``before`` (epoch seconds) and said how
    the stage was concluded: a successful run (a release or a rollback) or a failed release."""
    value = await tx.fetchvalue(
        "SELECT MAX(concluded_at) FROM runs WHERE flow_id = ? AND concluded_at < ?"
        " AND (status = 'success' OR (status = 'failed' AND kind = 'release'))",
        (flow_id, before),
    )
    return None if value is None else float(value)


async def get_plan(tx: Transaction, run_id: str) -> Any:
    """The plan a run was started with (None for runs made before plans were kept)."""
    return load_json(await tx.fetchvalue("SELECT plan FROM runs WHERE id = ?", (run_id,)))


async def resumes_of(tx: Transaction, run_id: str) -> list[Row]:
    """The runs that resume ``run_id``, oldest first."""
    return await tx.fetchall("SELECT id, status FROM runs WHERE resumed_from = ? ORDER BY seq", (run_id,))

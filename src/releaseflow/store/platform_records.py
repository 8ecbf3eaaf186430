"""The nodes that made something on a platform (builds, job runs, deploys, backups), read across runs.

They are rows of ``node_runs`` of the kinds that act on infrastructure, joined to their run and
stage: what ``releaseflow.engine.platform_records`` serves as records. They are read newest first
(by start, then id), in pages after a key, so that a page costs the same however long the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from releaseflow.store.database import Row, Transaction, from_epoch
from releaseflow.store.records import dump_json, load_json

_COLUMNS = (
    "SELECT n.id, n.run_id, n.path, n.ref, n.kind, n.status, n.attempt, n.started_at, n.ended_at,"
    " n.code, n.data, n.error, f.project_id, f.pipeline_id, f.stage"
    " FROM node_runs n JOIN runs r ON r.id = n.run_id JOIN release_flows f ON f.id = r.flow_id"
)
_LIKE_ESCAPE = "\\"


@dataclass(frozen=True)
class NodeFilter:
    project_id: str
    kinds: Sequence[str]
    pipeline_id: str | None = None
    stage: str | None = None
    run_id: str | None = None
    # Only nodes whose resolved code holds this string, quoted: a coarse filter on the resource a
    # node names (where in the code depends on the kind: the caller checks the exact field).
    mentions: str | None = None
    # Only nodes whose answer (data) holds this string, quoted: coarse, like ``mentions``.
    answered: str | None = None


def _decoded(row: Row) -> Row:
    return {
        **row,
        "code": load_json(row["code"]),
        "data": load_json(row["data"]),
        "error": load_json(row["error"]),
        "started_epoch": row["started_at"],
        "started_at": from_epoch(row["started_at"]),
        "ended_at": from_epoch(row["ended_at"]),
    }


def _quoted_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` as a JSON string anywhere in a column ``dump_json`` wrote."""
    quoted = dump_json(text)
    return "%" + "".join(_LIKE_ESCAPE + char if char in "%_\\" else char for char in quoted) + "%"


async def node_records(
    tx: Transaction, where: NodeFilter, *, after: tuple[float, str] | None = None, limit: int | None = None
) -> list[Row]:
    """The started nodes the filter lets through, newest first, after the key (start, id) of the last
    one seen. A node a resume carried over did not act again (it keeps the response of the run it
    came from), so it is left out."""
    clauses = [
        "f.project_id = ?",
        f"n.kind IN ({', '.join('?' for _ in where.kinds)})",
        "n.started_at IS NOT NULL",
        "n.carried_from IS NULL",
    ]
    params: list[object] = [where.project_id, *where.kinds]
    for column, value in (
        ("f.pipeline_id", where.pipeline_id),
        ("f.stage", where.stage),
        ("n.run_id", where.run_id),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if where.mentions is not None:
        clauses.append(f"n.code LIKE ? ESCAPE '{_LIKE_ESCAPE}'")
        params.append(_quoted_pattern(where.mentions))
    if where.answered is not None:
        clauses.append(f"n.data LIKE ? ESCAPE '{_LIKE_ESCAPE}'")
        params.append(_quoted_pattern(where.answered))
    if after is not None:
        clauses.append("(n.started_at < ? OR (n.started_at = ? AND n.id < ?))")
        params += [after[0], after[0], after[1]]
    sql = f"{_COLUMNS} WHERE {' AND '.join(clauses)} ORDER BY n.started_at DESC, n.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_decoded(row) for row in await tx.fetchall(sql, params)]


async def node_record(tx: Transaction, node_id: str) -> Row | None:
    """One node with its run's place, whatever its kind (the caller checks it)."""
    row = await tx.fetchone(f"{_COLUMNS} WHERE n.id = ?", (node_id,))
    return None if row is None else _decoded(row)


async def node_record_at(tx: Transaction, run_id: str, path: str) -> Row | None:
    """The node at ``path`` of run ``run_id``, like ``node_record``."""
    row = await tx.fetchone(f"{_COLUMNS} WHERE n.run_id = ? AND n.path = ?", (run_id, path))
    return None if row is None else _decoded(row)

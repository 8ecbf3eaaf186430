"""The nodes that made something on a platform (builds, job runs, deploys, backups), read across runs.

They are rows of ``node_runs`` of the kinds that act on infrastructure, joined to their run and
stage: what ``releaseflow.engine.platform_records`` serves as records.
"""

from __future__ import annotations

from collections.abc import Sequence

from releaseflow.store.database import Row, Transaction, from_epoch
from releaseflow.store.records import load_json

_COLUMNS = (
    "SELECT n.id, n.run_id, n.path, n.ref, n.kind, n.status, n.attempt, n.started_at, n.ended_at,"
    " n.code, n.data, n.error, f.project_id, f.pipeline_id, f.stage"
    " FROM node_runs n JOIN runs r ON r.id = n.run_id JOIN release_flows f ON f.id = r.flow_id"
)


def _decoded(row: Row) -> Row:
    return {
        **row,
        "code": load_json(row["code"]),
        "data": load_json(row["data"]),
        "error": load_json(row["error"]),
        "started_at": from_epoch(row["started_at"]),
        "ended_at": from_epoch(row["ended_at"]),
    }


async def node_records(
    tx: Transaction,
    project_id: str,
    kinds: Sequence[str],
    *,
    pipeline_id: str | None = None,
    stage: str | None = None,
    run_id: str | None = None,
) -> list[Row]:
    """The started nodes of these kinds in the project's runs, newest first. A node a resume carried
    over did not act again (it keeps the response of the run it came from), so it is left out."""
    where = [
        "f.project_id = ?",
        f"n.kind IN ({', '.join('?' for _ in kinds)})",
        "n.started_at IS NOT NULL",
        "n.carried_from IS NULL",
    ]
    params: list[object] = [project_id, *kinds]
    for column, value in (("f.pipeline_id", pipeline_id), ("f.stage", stage), ("n.run_id", run_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    rows = await tx.fetchall(
        f"{_COLUMNS} WHERE {' AND '.join(where)} ORDER BY n.started_at DESC, n.id", params
    )
    return [_decoded(row) for row in rows]


async def node_record(tx: Transaction, node_id: str) -> Row | None:
    """One node with its run's place, whatever its kind (the caller checks it)."""
    row = await tx.fetchone(f"{_COLUMNS} WHERE n.id = ?", (node_id,))
    return None if row is None else _decoded(row)

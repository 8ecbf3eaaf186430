"""The approvals waiting for people: what `releaseflow approvals` lists (a read, no writes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from releaseflow.engine.approvals import may_decide, named_approvers, required_approvals, starter_of
from releaseflow.store import approvals as store
from releaseflow.store.database import Database, from_epoch
from releaseflow.store.records import load_json


@dataclass(frozen=True)
class WaitingApproval:
    run_id: str
    run_name: str
    project_id: str
    pipeline_id: str
    stage: str
    node: str  # its ref, or its path when it has none
    since: datetime | None
    expires: datetime | None  # None: it waits for ever
    required: int
    approved_by: tuple[str, ...]
    # Who may decide: the template's approvers, or empty for anyone but the run's starter.
    approvers: tuple[str, ...]
    started_by: str


async def waiting_approvals(db: Database, for_person: str | None = None) -> list[WaitingApproval]:
    """Approval nodes waiting for a decision; with ``for_person``, only those that person may decide
    and has not approved yet (not the runs they started, not those naming other approvers)."""
    async with db.read() as tx:
        rows = await store.waiting_approvals(tx)
    found = []
    for row in rows:
        code = load_json(row["code"])
        data = load_json(row["data"]) or {}
        approved = tuple(data.get("approvals", ())) if isinstance(data, dict) else ()
        started_by = starter_of(row["origin_kind"], row["origin_by"])
        if for_person is not None and (
            may_decide(code, started_by, for_person) is not None or for_person in approved
        ):
            continue
        found.append(
            WaitingApproval(
                run_id=row["run_id"],
                run_name=row["run_name"] or f"run {row['seq']}",
                project_id=row["project_id"],
                pipeline_id=row["pipeline_id"],
                stage=row["stage"],
                node=row["ref"] or row["path"],
                since=from_epoch(row["started_at"]),
                expires=from_epoch(row["wait_deadline"]),
                required=required_approvals(code),
                approved_by=approved,
                approvers=named_approvers(code),
                started_by=started_by,
            )
        )
    return found

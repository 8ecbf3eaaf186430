"""One backup or restore, run by a process of its own:
``python -m releaseflow.platform.local.postgres_operation <operation.json>``.

The local driver starts it detached (``processes.spawn``), so it is not a child of the releaseflow process
that asked for it: when that process is killed, the pg_dump/pg_restore it asked for runs on, and the
releaseflow process that takes over the node adopts it by reading what this one leaves in its folder:

    operation.json  what to do (written by the driver before the start; no password: that one comes in
                    the environment variable ``PASSWORD_VARIABLE``)
    result.json     how it ended: ``{"status": "succeeded"|"failed", "error", "sizeBytes", "endedAt"}``
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from releaseflow.domain.errors import describe_error
from releaseflow.platform.driver import DriverError
from releaseflow.platform.local import postgres_backups as backups
from releaseflow.platform.local.postgres_cluster import utcnow
from releaseflow.platform.local.postgres_connection import ConnectionTarget, probe
from releaseflow.platform.local.state_files import read_json, write_json

PASSWORD_VARIABLE = "RELEASEFLOW_OPERATION_PASSWORD"
OPERATION_FILE = "operation.json"
RESULT_FILE = "result.json"


def target_data(target: ConnectionTarget) -> dict[str, Any]:
    """``target`` without its password, for ``operation.json``."""
    where = {name: getattr(target, name) for name in ("host", "port", "dbname", "user")}
    return {**where, "options": dict(target.options)}


async def _perform(operation: dict[str, Any], target: ConnectionTarget) -> int:
    """Do the operation; the size of what a backup wrote (0 for a restore)."""
    checked = await probe(target)  # a clear "database down" or "authentication failed" first
    if not checked.ok:
        raise DriverError(checked.error)
    if operation["kind"] == "backup":
        layout = backups.Layout(
            operation["layout"]["name"], operation["layout"]["suffix"], tuple(operation["layout"]["dumpArgs"])
        )
        output = Path(operation["output"])
        await asyncio.to_thread(output.parent.mkdir, parents=True, exist_ok=True)
        await backups.dump(operation["tool"], target, layout, output)
        return await asyncio.to_thread(backups.path_size, output)
    await backups.restore(
        operation["tool"],
        target,
        operation["layout"]["name"],
        Path(operation["source"]),
        keep_owners=bool(operation["keepOwners"]),
    )
    return 0


def main(argv: list[str]) -> int:
    folder = Path(argv[1]).parent
    operation = read_json(Path(argv[1]))
    assert operation is not None, f"{argv[1]} is missing"
    where = operation["target"]
    target = ConnectionTarget(
        host=where["host"],
        port=int(where["port"]),
        dbname=where["dbname"],
        user=where["user"],
        password=os.environ.get(PASSWORD_VARIABLE),
        options=dict(where.get("options", {})),
    )
    result: dict[str, Any] = {"status": "succeeded", "error": "", "sizeBytes": 0}
    try:
        result["sizeBytes"] = asyncio.run(_perform(operation, target))
    except DriverError as error:
        result.update(status="failed", error=str(error))
    except Exception as error:
        result.update(status="failed", error=f"unexpected error: {describe_error(error)}")
    result["endedAt"] = utcnow().isoformat()
    write_json(folder / RESULT_FILE, result)
    return 0 if result["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

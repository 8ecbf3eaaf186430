"""Forward-only schema migrations.

Each file ``migrations/NNNN_name.sql`` runs once, in order, in its own transaction, and is recorded in
``schema_migrations``. ``current_schema.sql`` declares the schema the migrations must produce; a test
builds a database both ways and compares them, so the two cannot drift apart.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources

from releaseflow.store.database import Database, Dialect, Transaction

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"@SERIAL_PK@": "INTEGER PRIMARY KEY AUTOINCREMENT", "@TIME@": "REAL"},
    "postgresql": {
        "@SERIAL_PK@": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "@TIME@": "DOUBLE PRECISION",
    },
}
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def render(sql: str, dialect: Dialect) -> list[str]:
    """The statements of a schema file, with placeholders replaced for ``dialect``."""
    for placeholder, replacement in _TYPES[dialect].items():
        sql = sql.replace(placeholder, replacement)
    without_comments = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [statement.strip() for statement in without_comments.split(";") if statement.strip()]


def available_migrations() -> list[Migration]:
    folder = resources.files("releaseflow.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda migration: migration.version)


def current_schema_sql() -> str:
    return (resources.files("releaseflow.store") / "current_schema.sql").read_text(encoding="utf-8")


async def _ensure_ledger(tx: Transaction) -> None:
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
    )


async def applied_versions(db: Database) -> set[int]:
    async with db.transaction() as tx:
        await _ensure_ledger(tx)
        rows = await tx.fetchall("SELECT version FROM schema_migrations")
    return {int(row["version"]) for row in rows}


async def migrate(db: Database) -> list[Migration]:
    """Apply every migration not yet applied; returns those it applied."""
    done = await applied_versions(db)
    applied = []
    for migration in available_migrations():
        if migration.version in done:
            continue
        async with db.transaction() as tx:
            # Two processes starting together: the second waits here, then sees the row and skips.
            if await tx.fetchone("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)):
                continue
            for statement in render(migration.sql, db.dialect):
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        applied.append(migration)
    return applied


async def pending_migrations(db: Database) -> list[Migration]:
    done = await applied_versions(db)
    return [migration for migration in available_migrations() if migration.version not in done]

"""``db migrate`` and ``db status``: the database schema."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from releaseflow.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, database, redact_url, run_async

if TYPE_CHECKING:
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    db = commands.add_parser("db", help="database schema: migrate, status")
    db.set_defaults(
        machine=True,
        local_only="it changes this machine's database (a server migrates its own when it starts)",
    )
    actions = db.add_subparsers(dest="db_command", required=True, metavar="{migrate,status}")
    actions.add_parser("migrate", help="apply the migrations the database lacks").set_defaults(
        handler=migrate_db
    )
    actions.add_parser("status", help="show which migrations are applied").set_defaults(handler=db_status)


def migrate_db(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.store.migrate import migrate

    async def go() -> int:
        async with database(settings, require_schema=False, create=True) as db:
            applied = await migrate(db)
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
        print(
            f"{redact_url(settings.database_url)}: schema up to date"
            + ("" if applied else " (nothing to do)")
        )
        return EXIT_OK

    return run_async(go())


def db_status(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.store.migrate import available_migrations, pending_migrations

    async def go() -> int:
        async with database(settings, require_schema=False) as db:
            pending = {migration.version for migration in await pending_migrations(db)}
        print(f"database {redact_url(settings.database_url)}")
        for migration in available_migrations():
            state = "pending" if migration.version in pending else "applied"
            print(f"  {migration.version:04d}_{migration.name}  {state}")
        if pending:
            print(f"{len(pending)} migration(s) pending: run `releaseflow db migrate`")
            return EXIT_FAILED
        return EXIT_OK

    return run_async(go())

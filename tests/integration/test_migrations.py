"""The migrations build exactly the schema that current_schema.sql declares, on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from releaseflow.store.database import Database, open_database
from releaseflow.store.migrate import (
    available_migrations,
    current_schema_sql,
    migrate,
    pending_migrations,
    render,
)


async def describe(db: Database) -> dict[str, Any]:
    """Tables, columns, indexes and constraints, in a form that ignores creation order."""
    async with db.read() as tx:
        if db.dialect == "sqlite":
            tables = [
                row["name"]
                for row in await tx.fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                    " AND name != 'schema_migrations' ORDER BY name"
                )
            ]
            shape: dict[str, Any] = {}
            for table in tables:
                columns = await tx.fetchall(f"PRAGMA table_info({table})")
                indexes = await tx.fetchall(f"PRAGMA index_list({table})")
                foreign = await tx.fetchall(f"PRAGMA foreign_key_list({table})")
                index_sql = await tx.fetchall(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name",
                    (table,),
                )
                shape[table] = {
                    "columns": sorted(
                        (c["name"], c["type"], c["notnull"], c["dflt_value"], c["pk"]) for c in columns
                    ),
                    "indexes": sorted((i["name"], i["unique"], i["origin"], i["partial"]) for i in indexes),
                    "index_sql": [(i["name"], i["sql"]) for i in index_sql],
                    "foreign": sorted((f["table"], f["from"], f["to"]) for f in foreign),
                }
            return shape
        columns = await tx.fetchall(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
            " FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name != 'schema_migrations'"
            " ORDER BY table_name, column_name"
        )
        indexes = await tx.fetchall(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename != 'schema_migrations' ORDER BY indexname"
        )
        constraints = await tx.fetchall(
            "SELECT conrelid::regclass::text AS table_name, conname, pg_get_constraintdef(oid) AS definition"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY conname"
        )
        return {
            "columns": [tuple(row.values()) for row in columns],
            "indexes": [tuple(row.values()) for row in indexes],
            "constraints": [
                tuple(row.values()) for row in constraints if row["table_name"] != "schema_migrations"
            ],
        }


async def test_migrations__build_the_declared_schema(database_url: str, tmp_path: Path) -> None:
    migrated = await open_database(database_url)
    try:
        # The fixture's database may already be migrated (PostgreSQL copies a migrated template).
        await migrate(migrated)
        if migrated.dialect == "sqlite":
            declared_shape = await _declared_shape(f"sqlite://{tmp_path}/declared.db")
        else:
            declared_shape = await _declared_postgres_shape(database_url)
        assert await describe(migrated) == declared_shape
        assert await pending_migrations(migrated) == []
    finally:
        await migrated.close()


async def _declared_shape(url: str) -> dict[str, Any]:
    """Build current_schema.sql in an empty database and describe it."""
    declared = await open_database(url)
    try:
        async with declared.transaction() as tx:
            for statement in render(current_schema_sql(), declared.dialect):
                await tx.execute(statement)
        return await describe(declared)
    finally:
        await declared.close()


async def _declared_postgres_shape(sibling_url: str) -> dict[str, Any]:
    server = sibling_url.rsplit("/", 1)[0]
    name = "rf_declared_schema"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    try:
        return await _declared_shape(f"{server}/{name}")
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_migrations__are_numbered_and_applied_once(db: Database) -> None:
    versions = [migration.version for migration in available_migrations()]
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert await migrate(db) == []

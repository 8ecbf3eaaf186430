"""Values a database cannot hold (a NUL character in text on PostgreSQL, an integer beyond 64 bits on
SQLite) are refused as invalid input (``ValidationError``: a 400 over HTTP), never an internal error;
the transaction they came in is rolled back and the database keeps serving."""

from __future__ import annotations

import pytest

from releaseflow.domain.errors import ValidationError
from releaseflow.store.database import Database

HUGE = 2**70
NUL_TEXT = "acme\x00evil"
INSERT = "INSERT INTO projects (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)"


async def test_an_integer_beyond_64_bits__is_refused_or_matches_nothing(db: Database) -> None:
    lookup = "SELECT version FROM schema_migrations WHERE version = ?"
    async with db.read() as tx:
        if db.dialect == "sqlite":
            with pytest.raises(ValidationError, match="beyond 64 bits"):
                await tx.fetchall(lookup, (HUGE,))
        else:  # PostgreSQL compares it as a numeric: no row has it
            assert await tx.fetchall(lookup, (HUGE,)) == []
    with pytest.raises(ValidationError, match="64 bits"):
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", (HUGE, "x", 1.0)
            )
    async with db.read() as tx:
        assert await tx.fetchvalue("SELECT COUNT(*) FROM schema_migrations WHERE name = ?", ("x",)) == 0


async def test_text_with_nul__is_refused_on_postgresql_and_kept_on_sqlite(db: Database) -> None:
    if db.dialect == "sqlite":
        async with db.transaction() as tx:
            await tx.execute(INSERT, (NUL_TEXT, "n", 1.0, 1.0))
        async with db.read() as tx:
            assert await tx.fetchvalue("SELECT id FROM projects WHERE id = ?", (NUL_TEXT,)) == NUL_TEXT
        return
    with pytest.raises(ValidationError, match="NUL character"):
        async with db.read() as tx:
            await tx.fetchall("SELECT id FROM projects WHERE id = ?", (NUL_TEXT,))
    with pytest.raises(ValidationError, match="NUL character"):
        async with db.transaction() as tx:
            await tx.executemany(INSERT, [(NUL_TEXT, "n", 1.0, 1.0)])
    async with db.transaction() as tx:  # the connection went back to the pool clean
        await tx.execute(INSERT, ("acme", "Acme", 1.0, 1.0))
    async with db.read() as tx:
        assert await tx.fetchall("SELECT id FROM projects") == [{"id": "acme"}]

"""Hostile input: run names and descriptions refused (Northflank's rules, no controls); the rest escaped."""

from __future__ import annotations

import pytest
from tests.integration.support import EngineHarness, job_run, template, workflow

from releaseflow.cli import render
from releaseflow.domain.errors import ValidationError
from releaseflow.domain.text import unsafe_characters
from releaseflow.engine import queries
from releaseflow.store import runs as run_store
from releaseflow.testing import Fail

BAD_NAMES = {
    "too short": "ab",
    "too long": "a" * 40,
    "starts with a digit": "1st release",
    "punctuation": "release v1.2",
    "double space": "hot  fix",
    "trailing hyphen": "hotfix-",
    "terminal escape": "fix\x1b[2J",
    "NUL": "fix\x00it",
    "bidi override": "fix\u202eit",
    "newline": "fix\nit",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
async def test_start_run__display_name_follows_northflank_rules(harness: EngineHarness, name: str) -> None:
    await harness.seed(template(workflow(job_run("migration"))))
    with pytest.raises(ValidationError) as caught:
        await harness.start(name=name)
    (issue,) = caught.value.issues
    assert issue.path == "name"
    async with harness.db.read() as tx:
        assert await tx.fetchall("SELECT id FROM runs", ()) == []


@pytest.mark.parametrize("name", ["abc", "a" * 39, "Hotfix 2", "release-2-b", "First demo run"])
async def test_start_run__valid_display_names_are_kept(harness: EngineHarness, name: str) -> None:
    await harness.seed(template(workflow(job_run("migration"))))
    run = await harness.start(name=name)
    assert run.display_name == name


async def test_rename_run__description_and_name_refuse_control_characters(harness: EngineHarness) -> None:
    await harness.seed(template(workflow(job_run("migration"))))
    run = await harness.start(name="clean")
    for fields in ({"description": "ok\x1b]0;pwned\x07"}, {"name": "bad\u2066name"}):
        with pytest.raises(ValidationError) as caught:
            await harness.engine.rename_run(run.id, **fields)
        (issue,) = caught.value.issues
        assert "control or invisible formatting characters" in issue.message
    async with harness.db.read() as tx:
        stored = await run_store.get_run(tx, run.id)
    assert stored is not None and (stored.display_name, stored.description) == ("clean", "")


# (No NUL: documents refuse it, and a PostgreSQL text column cannot hold one; see test_documents.)
ESCAPES = "\x1b[2J\x1b]0;owned\x07\u202etxt.exe\x9b"


async def test_show__untrusted_text_is_printed_escaped(harness: EngineHarness) -> None:
    """Argument values and platform errors are not refused (they are data), but never reach a terminal raw."""
    harness.driver.script("migrate", Fail(f"job said: {ESCAPES}\nsecond line", retryable=False))
    await harness.seed(template(workflow(job_run("migration")), arguments={"who": ESCAPES}))
    run = await harness.start(name="escapes")
    harness.start_worker()
    await harness.run(run.id)
    detail = await queries.run_detail(harness.db, run.id, with_events=True)

    lines = [
        *render.run_header(detail),
        *render.run_tree(detail),
        *render.runs_table([detail.run]),
        *render.error_lines(f"bad value '{ESCAPES}\x00'"),
    ]

    printed = "\n".join(lines)
    assert unsafe_characters(printed.replace("\n", " ")) is None, printed  # line feeds are the only controls
    assert "who=\\x1b[2J\\x1b]0;owned\\x07\\u202etxt.exe\\x9b" in printed
    assert "error: bad value '\\x1b[2J\\x1b]0;owned\\x07\\u202etxt.exe\\x9b\\x00'" in printed
    assert "error: job said: \\x1b[2J" in printed

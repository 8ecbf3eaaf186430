"""Hostile input the engine refuses: run names and descriptions (Northflank's rules, no controls)."""

from __future__ import annotations

import pytest
from tests.integration.support import EngineHarness, job_run, template, workflow

from releaseflow.domain.errors import ValidationError
from releaseflow.store import runs as run_store

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

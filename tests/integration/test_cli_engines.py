"""The commands that start runs outside ``serve`` (the demo's first run, and the trigger commands) build
their engine as ``serve`` does, with the key of secret arguments: a flow that declares one starts."""

from __future__ import annotations

from pathlib import Path

import yaml
from tests.acceptance.config import message
from tests.integration.support import template, workflow

from releaseflow.cli.demo import PIPELINE, PROJECT, _prepare
from releaseflow.cli.local_backend import run_engine
from releaseflow.cli.server import migrate_database
from releaseflow.domain.secret_values import MASK
from releaseflow.engine import queries
from releaseflow.settings import Settings
from releaseflow.store import runs as run_store
from releaseflow.store.database import open_database

# Development's flow: one Message node (never sent: no worker runs here) and a secret argument.
FLOW = template(
    workflow(message("hello", "${args.inbox}", "hi")),
    arguments={"inbox": "http://127.0.0.1:9/inbox", "TOKEN": "s3cret-default"},
    secretArguments=["TOKEN"],
)


def demo_shaped_config(folder: Path) -> Path:
    """The demo's project and pipeline, whose Development flow declares a secret argument."""
    config = {
        "projects": [
            {
                "id": PROJECT,
                "pipelines": [{"id": PIPELINE, "stages": [{"name": "Development", "releaseFlow": FLOW}]}],
            }
        ]
    }
    path = folder / "demo.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def test_demo_first_run__starts_a_flow_with_a_secret_argument(
    tmp_path: Path, database_url: str
) -> None:
    # SQLite: the data directory's own database, as the demo makes it.
    postgresql = None if database_url.startswith("sqlite") else database_url
    settings = Settings.from_env({}, data_dir=str(tmp_path / "data"), database_url=postgresql)
    await migrate_database(settings)

    run_id = await _prepare(settings, demo_shaped_config(tmp_path), "http://127.0.0.1:9/inbox")

    db = await open_database(settings.database_url)
    try:
        assert (await queries.run_detail(db, run_id)).arguments["TOKEN"] == MASK
        # The engine of the commands that start runs (triggers, run, resume) holds the same key: it
        # opens what the demo's engine sealed.
        async with db.read() as tx:
            record = await run_store.get_run(tx, run_id)
        assert record is not None
        opened = run_engine(db, settings).templates.arguments(record)
    finally:
        await db.close()
    assert opened["TOKEN"] == "s3cret-default"

"""``releaseflow demo``: everything a newcomer needs to see releaseflow work, in one command.

It prepares the data directory, migrates, applies the demo configuration (with the inbox address of
the server it is about to start), starts a first run of Development, says what to try next, and
serves.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from releaseflow.cli.common import Subparsers, database, run_async
from releaseflow.cli.render import short_id
from releaseflow.cli.server import configure_logging, migrate_database, serve
from releaseflow.demo import CONFIG_FILE, DEFAULT_INBOX, demo_files
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.engine.configuration import apply_configuration, load_configuration_file
from releaseflow.settings import Settings

PROJECT = "demo"
PIPELINE = "web"


def register(commands: Subparsers) -> None:
    demo = commands.add_parser("demo", help="set up a demo pipeline, start a first run, and serve")
    demo.set_defaults(handler=demo_command)


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings)
    inbox = f"{settings.base_url}/inbox"
    config_path = write_demo_files(settings.data_dir / "demo", inbox)
    run_async(migrate_database(settings))
    run_id = run_async(_prepare(settings, config_path, inbox))
    print(_next_steps(settings, config_path, run_id), flush=True)
    return serve(settings)


def write_demo_files(folder: Path, inbox: str) -> Path:
    """Copy the demo's files into ``folder`` with the flows' inbox default set to ``inbox``.

    Written anew each time, so that the default always matches the server's port.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in demo_files().items():
        text = source.read_text(encoding="utf-8").replace(DEFAULT_INBOX, inbox)
        (folder / name).write_text(text, encoding="utf-8")
    return folder / CONFIG_FILE


async def _prepare(settings: Settings, config_path: Path, inbox: str) -> str:
    config = load_configuration_file(config_path)
    async with database(settings) as db:
        plan = await apply_configuration(db, config, SystemClock())
        print(plan.render() if plan.has_changes else "demo configuration already applied", flush=True)
        run = await Engine(db, SystemClock()).start_run(
            PROJECT,
            PIPELINE,
            "Development",
            RunRequest(
                name="First demo run",
                description="started by releaseflow demo",
                arguments={"inbox": inbox},
                triggered_by="demo",
            ),
        )
    return run.id


def _next_steps(settings: Settings, config_path: Path, run_id: str) -> str:
    command = "releaseflow"
    if settings.data_dir != Path("data").resolve():
        command += f" --data-dir {settings.data_dir}"
    tries = [
        (f"{command} runs {PIPELINE} Development", "the runs of Development"),
        (f"{command} show {short_id(run_id)}", "the demo run: its workflows and nodes"),
        (f"curl {settings.base_url}/inbox/development", "what its Message nodes delivered"),
        (f"{command} run {PIPELINE} Production --follow", "a run that waits for approval, live"),
        (f"{command} approve RUN go-live --as YOUR-NAME", "(another terminal; RUN as `run` printed)"),
        (f"curl {settings.base_url}/inbox/production", "what Production delivered"),
        (f"{command} run {PIPELINE} Development --arg skipSmokeTest=true", "skips one node"),
        (f"{command} apply -f {config_path}", f"after editing {config_path.parent}/*.yaml"),
    ]
    width = max(len(line) for line, _ in tries)
    return "\n".join(
        [
            "",
            "releaseflow demo is ready",
            f"  server    {settings.base_url}  (health: {settings.base_url}/healthz)",
            f"  data      {settings.data_dir}",
            f"  demo run  {run_id} of {PIPELINE}/Development (project {PROJECT})",
            "",
            "Try next, in another terminal in this directory:",
            *(f"  {line.ljust(width)}   # {why}" for line, why in tries),
            "",
        ]
    )

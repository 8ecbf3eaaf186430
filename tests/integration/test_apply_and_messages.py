"""Configuration apply against the store, and Message nodes delivered over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.http_receiver import Receiver
from tests.integration.support import EngineHarness, template, workflow

from releaseflow.domain.errors import ValidationError
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine import queries
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.configuration import apply_configuration, load_configuration_file
from releaseflow.store import catalog
from releaseflow.store.database import Database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"


async def test_apply__creates_everything_then_changes_nothing(db: Database) -> None:
    config = load_configuration_file(FIXTURES / "example.yaml")
    first = await apply_configuration(db, config, SystemClock())
    assert first.has_changes
    second = await apply_configuration(db, config, SystemClock())
    assert not second.has_changes
    async with db.read() as tx:
        project_id = config.projects[0].id
        pipeline = config.projects[0].pipelines[0]
        assert await catalog.list_stages(tx, project_id, pipeline.id) == [
            stage.name for stage in pipeline.stages
        ]
        flow = await catalog.get_flow(tx, project_id, pipeline.id, pipeline.stages[-1].name)
        assert flow is not None and flow.current_version == 1


async def test_apply__a_changed_flow_becomes_a_new_version_and_old_ones_stay(
    db: Database, tmp_path: Path
) -> None:
    for each in FIXTURES.rglob("*.yaml"):
        target = tmp_path / each.relative_to(FIXTURES)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(each.read_text())
    await apply_configuration(db, load_configuration_file(tmp_path / "example.yaml"), SystemClock())
    staging = tmp_path / "flows" / "staging.yaml"
    staging.write_text(staging.read_text().replace("sequential", "parallel", 1))
    plan = await apply_configuration(db, load_configuration_file(tmp_path / "example.yaml"), SystemClock())
    assert [change.action for change in plan.changes if change.action != "unchanged"] == ["update"]
    async with db.read() as tx:
        config = load_configuration_file(tmp_path / "example.yaml")
        project = config.projects[0]
        flow = await catalog.get_flow(tx, project.id, project.pipelines[0].id, "Staging")
        assert flow is not None and flow.current_version == 2
        versions = await catalog.list_flow_versions(tx, flow.id)
        first = await catalog.get_flow_version(tx, flow.id, 1)
    assert [row["version"] for row in versions] == [1, 2]
    second = await _version(db, flow.id, 2)
    assert first is not None and first["document"] != second["document"]
    assert second["document"]["spec"]["spec"]["type"] == "parallel"
    views = await queries.flow_versions(db, project.id, project.pipelines[0].id, "Staging")
    assert [(view.version, view.current) for view in views] == [(1, False), (2, True)]
    old = await queries.flow_version(db, project.id, project.pipelines[0].id, "Staging", 1)
    assert old.document == first["document"] and not old.current


async def _version(db: Database, flow_id: str, version: int) -> dict[str, Any]:
    async with db.read() as tx:
        row = await catalog.get_flow_version(tx, flow_id, version)
    assert row is not None
    return row


async def test_apply__a_bad_file_changes_nothing(db: Database, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("projects:\n  - id: Shop!\n    pipelines: 3\n")
    with pytest.raises(ValidationError) as caught:
        load_configuration_file(bad)
    assert {issue.path for issue in caught.value.issues} >= {"projects[0].id", "projects[0].pipelines"}
    async with db.read() as tx:
        assert await catalog.list_projects(tx) == []


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(getattr(request, "param", 200))
    yield server
    server.close()


def message(ref: str, channel: str, url: str, text: str) -> dict[str, object]:
    return {
        "kind": "Message",
        "ref": ref,
        "spec": {"kind": channel, "spec": {"webhookUrl": url, "message": text}},
    }


async def test_message__raw_webhook_and_slack_are_posted_and_recorded(
    harness: EngineHarness, receiver: Receiver
) -> None:
    await harness.seed(
        template(
            workflow(
                message("raw", "RAW_WEBHOOK", receiver.url, "deploying ${args.version}"),
                message("slack", "SLACK", receiver.url, "*done* ${refs.raw.statusCode}"),
            ),
            arguments={"version": "1.2.3"},
        )
    )
    run = await harness.start()
    harness.start_worker()
    assert (await harness.run(run.id)).status is RunStatus.SUCCESS
    raw, slack = receiver.bodies
    assert raw["message"] == "deploying 1.2.3" and raw["runId"] == run.id
    assert slack == {"text": "*done* 200", "mrkdwn": True}
    node = (await harness.nodes(run.id))["raw"]
    assert node.data == {"url": receiver.url, "statusCode": 200, "body": "received"}


@pytest.mark.parametrize("receiver", [404], indirect=True)
async def test_message__a_refusing_endpoint_fails_without_retry(
    harness: EngineHarness, receiver: Receiver
) -> None:
    await harness.seed(template(workflow(message("raw", "RAW_WEBHOOK", receiver.url, "hello"))))
    run = await harness.start()
    harness.start_worker()
    assert (await harness.run(run.id)).status is RunStatus.FAILED
    node = (await harness.nodes(run.id))["raw"]
    assert node.status is NodeStatus.FAILED and node.attempt == 1
    assert node.error == {"code": 404, "message": f"{receiver.url} answered HTTP 404"}
    assert len(receiver.bodies) == 1

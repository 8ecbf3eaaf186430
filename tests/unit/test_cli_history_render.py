"""What ``state PIPELINE``, ``metrics``, ``plan`` and ``show --plan`` print, from plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from releaseflow.cli.insights import comparison_lines, metrics_lines, parse_since
from releaseflow.cli.plan import plan_lines
from releaseflow.domain.concurrency import Admission, AdmissionAction
from releaseflow.domain.delivery_metrics import RunFact, delivery_metrics
from releaseflow.domain.errors import ValidationError
from releaseflow.domain.release_history import Deployed, compare_stages
from releaseflow.domain.run_plan import admission_plan, run_plan
from releaseflow.domain.template_parser import parse_template
from releaseflow.engine.insights import StageMetrics
from releaseflow.wire import history as wire

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_comparison_lines__a_column_per_stage_and_a_verdict_per_pair() -> None:
    state = {
        "web-dev": Deployed("web-dev", {"kind": "build", "commit": "aaaaaaaaaaaa"}, "r2", T0),
        "web": Deployed("web", {"kind": "image", "image": "web:1"}, "r1", T0),
    }
    comparison = compare_stages(
        ["Development", "Production"],
        {"Development": ["web-dev"], "Production": ["web"]},
        [("web-dev", "web")],
        state,
        {"web-dev": "service", "web": "service"},
    )

    lines = comparison_lines(comparison)

    assert [line.split() for line in lines] == [
        ["SERVICE/JOB", "Development", "Production"],
        ["web", "aaaaaaaaaa", "(web-dev)", "web:1"],
        ["Development", "→", "Production:", "differ:", "web"],
    ]


def test_metrics_lines__figures_and_what_is_unknown() -> None:
    runs = [
        RunFact("r1", "release", "success", T0, T0 + timedelta(minutes=1)),
        RunFact("f1", "release", "failed", T0, T0 + timedelta(minutes=10)),
        RunFact("r2", "release", "success", T0, T0 + timedelta(minutes=25)),
    ]
    figures = delivery_metrics(runs, [], now=T0 + timedelta(days=2), since=T0)

    lines = metrics_lines(wire.metrics(StageMetrics("Production", figures, {})))

    assert lines[1:] == [
        "  deployment frequency  0 deployment(s), 0.00 per day",
        "  change failure rate   33% (1 of 3 releases: 1 failed, 0 rolled back)",
        "  mean time to restore  15m00s over 1 incident(s)",
        "  lead time             unknown (no deploy records the time of its commit)",
    ]


def test_parse_since__durations_dates_and_a_clear_refusal() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert parse_since("30d", now) == now - timedelta(days=30)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="'last week' is neither a date"):
        parse_since("last week", now)


def test_plan_lines__admission_tree_carried_nodes_and_deploys() -> None:
    template = parse_template(
        {
            "apiVersion": "v1.2",
            "spec": {
                "kind": "Workflow",
                "spec": {
                    "type": "sequential",
                    "steps": [{"kind": "JobRun", "ref": "migrate", "spec": {"jobId": "m"}}],
                },
            },
        }
    )
    plan = run_plan(
        stage="Production",
        flow_version=3,
        template=template,
        arguments={"who": "me"},
        overrides={},
        release_node_overrides={},
        admission=admission_plan(Admission(AdmissionAction.QUEUE, reason="policy queue"), ["a" * 36], []),
        problems=[],
        releases=[
            {
                "path": "p",
                "ref": "promote",
                "target": "web",
                "replaces": {"kind": "image", "image": "web:1"},
                "deploys": {"kind": "image", "image": "web:2"},
                "deploysFrom": "what web-stg runs now (promotion)",
            }
        ],
        carried_over=["spec.spec.steps[0]"],
    )

    lines = plan_lines(plan)

    assert lines[:3] == [
        "stage Production · release flow version 3 · concurrency policy allow",
        "admission: queued at position 1, behind aaaaaaaa (policy queue)",
        "arguments: who=me",
    ]
    assert "  sequential workflow" in lines
    assert "    migrate (JobRun)  [carried over, not run again]" in lines
    assert lines[-1].split() == [
        "promote",
        "web",
        "web:1",
        "web:2",
        "what",
        "web-stg",
        "runs",
        "now",
        "(promotion)",
    ]

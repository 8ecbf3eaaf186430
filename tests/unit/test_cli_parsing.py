"""The command line: argument parsing and the values of --arg, --override and --release-override."""

from __future__ import annotations

import pytest

from releaseflow.cli.main import build_parser, main
from releaseflow.cli.parsing import (
    parse_arguments,
    parse_overrides,
    parse_release_overrides,
    parse_run_inputs,
)
from releaseflow.domain.errors import ValidationError
from releaseflow.settings import Settings


def test_parser__run_takes_repeated_flags() -> None:
    command = "run web Production --project demo --arg a=1 --arg b=2 --override x.y=z --name hotfix --follow"
    args = build_parser().parse_args(command.split())
    assert (args.pipeline, args.stage, args.project) == ("web", "Production", "demo")
    assert args.arg == ["a=1", "b=2"]
    assert args.override == ["x.y=z"]
    assert args.name == "hotfix"
    assert args.follow is True


def test_parser__global_flags_come_before_the_command() -> None:
    args = build_parser().parse_args(
        ["--data-dir", "/tmp/x", "--database-url", "sqlite:///y.db", "runs", "web", "dev"]
    )
    assert (args.data_dir, args.database_url) == ("/tmp/x", "sqlite:///y.db")
    assert args.limit == 20


def test_parser__approve_requires_an_approver() -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["approve", "abc", "go-live"])
    assert exit_info.value.code == 2


def test_parser__runs_refuses_an_unknown_status() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["runs", "web", "dev", "--status", "exploded"])


def test_parser__db_needs_an_action() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["db"])
    assert build_parser().parse_args(["db", "status"]).db_command == "status"


def test_parse_arguments__keeps_text_and_equals_signs_in_values() -> None:
    assert parse_arguments(["branch=main", "query=a=b", "empty="]) == {
        "branch": "main",
        "query": "a=b",
        "empty": "",
    }


@pytest.mark.parametrize("value", ["novalue", "=x", " =x"])
def test_parse_arguments__refuses_a_value_without_key(value: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_arguments([value])
    assert [issue.path for issue in error.value.issues] == [f"--arg {value}"]


def test_parse_arguments__refuses_a_key_given_twice() -> None:
    with pytest.raises(ValidationError, match="given twice"):
        parse_arguments(["a=1", "a=2"])


def test_parse_overrides__reads_json_values_and_falls_back_to_text() -> None:
    overrides = parse_overrides(
        ["build.branch=devel", "build.count=2", 'gate.spec={"amount": 2}', 'x.tag="7"']
    )
    assert overrides == {
        "build": {"branch": "devel", "count": 2},
        "gate": {"spec": {"amount": 2}},
        "x": {"tag": "7"},
    }


@pytest.mark.parametrize("value", ["build", "build=1", "build.=1", ".branch=1", "build.branch"])
def test_parse_overrides__refuses_a_malformed_value(value: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_overrides([value])
    assert error.value.issues[0].path == f"--override {value}"
    assert "REF.FIELD=VALUE" in error.value.issues[0].message


def test_parse_release_overrides__needs_a_json_object() -> None:
    assert parse_release_overrides(['api={"type": "registry"}']) == {"api": {"type": "registry"}}
    with pytest.raises(ValidationError) as error:
        parse_release_overrides(["api={", "web=[1]", "nothing"])
    messages = {issue.path: issue.message for issue in error.value.issues}
    assert "not JSON" in messages["--release-override api={"]
    assert "JSON object" in messages["--release-override web=[1]"]
    assert "TARGET=JSON" in messages["--release-override nothing"]


def test_parse_run_inputs__reports_every_bad_flag_at_once() -> None:
    with pytest.raises(ValidationError) as error:
        parse_run_inputs(["x"], ["nodot=1"], ["api=nope"])
    assert [issue.path for issue in error.value.issues] == [
        "--arg x",
        "--override nodot=1",
        "--release-override api=nope",
    ]


def test_main__bad_flag_values_exit_2_with_each_issue_on_its_own_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--data-dir", "/nonexistent-rf", "run", "web", "dev", "--arg", "x", "--override", "y"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0].startswith("error: command line is invalid (2 errors)")
    assert err[1].strip().startswith("--arg x:")
    assert err[2].strip().startswith("--override y:")


def test_settings__flags_win_over_the_environment() -> None:
    environ = {
        "RELEASEFLOW_DATA_DIR": "/srv/rf",
        "RELEASEFLOW_PORT": "9000",
        "RELEASEFLOW_WORKER_LEASE_SECONDS": "3",
    }
    settings = Settings.from_env(environ, data_dir="/opt/other")
    assert str(settings.data_dir) == "/opt/other"
    assert settings.database_url == "sqlite:////opt/other/releaseflow.db"
    assert settings.port == 9000
    assert settings.worker.lease_seconds == 3.0


def test_settings__reports_every_bad_variable() -> None:
    with pytest.raises(ValidationError) as error:
        Settings.from_env({"RELEASEFLOW_PORT": "http", "RELEASEFLOW_WORKER_MAX_CONCURRENCY": "0"})
    assert [issue.path for issue in error.value.issues] == [
        "RELEASEFLOW_PORT",
        "RELEASEFLOW_WORKER_MAX_CONCURRENCY",
    ]


def test_parser__reject_takes_who_and_why() -> None:
    args = build_parser().parse_args(["reject", "abc", "go-live", "--as", "carol", "--reason", "freeze"])
    assert (args.node, args.approver, args.comment, args.reject) == ("go-live", "carol", "freeze", True)


@pytest.mark.parametrize(
    "command",
    [
        "logs build bld-1 -n 0",
        "logs build bld-1 -n -5",
        "logs build bld-1 -n 10001",
        "runs web dev --limit -1",
        "timeline web dev --limit 0",
        "state web --history --limit nine",
        "triggers web dev --limit 0",
        "notifications log --limit -3",
    ],
)
def test_counts__below_one_above_the_bound_or_not_a_number_are_refused_in_one_line(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(command.split())
    assert refused.value.code == 2
    said = capsys.readouterr().err
    assert "is not a count" in said or "is not a whole number" in said, said


def test_counts__one_and_the_bound_are_taken() -> None:
    assert build_parser().parse_args(["logs", "build", "bld-1", "-n", "10000"]).lines == 10_000
    assert build_parser().parse_args(["runs", "web", "dev", "--limit", "1"]).limit == 1

"""The command line through a server (``--server``/``--token``, or a saved login) against a real
``releaseflow serve``: the same commands print the same text as on the local database; a wrong token,
an unreachable server and a command that cannot act remotely each end in one line and an exit code.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.acceptance.config import PROJECT, write_config
from tests.acceptance.support import COMMAND, Releaseflow, free_port, started_run_id, wait_until
from tests.acceptance.test_cli_rollback import applied_project, without_terminal, write_project
from tests.integration.local_project import AppRepository, answer

from releaseflow.cli.common import EXIT_INTERRUPTED

# Commands whose local and remote output are compared; RUN, FAILED, WAITED stand for run ids.
SAME_TEXT = [
    ("pipelines",),
    ("status", "main"),
    ("runs", "main", "development"),
    ("runs", "main", "Staging", "--status", "failed"),
    ("runs", "main", "Production", "--json"),
    ("runs", "main", "Development", "--limit", "1"),
    ("show", "RUN"),
    ("show", "RUN", "--events"),
    ("show", "RUN", "--json"),
    ("show", "FAILED"),
    ("show", "WAITED", "--events"),
    ("status", "main"),
    ("state", "main", "development"),
    ("state", "main", "Development", "--history"),
    ("state", "main", "--json"),
    ("flow", "main", "Production"),
    ("flow", "main", "Production", "--versions"),
    ("flow", "main", "Production", "--version", "1"),
    ("rollbacks", "RUN"),
    ("token", "list"),
    ("plan", "main", "Production", "--arg", "x=1"),
    ("plan", "main", "Development", "--json"),
    ("show", "RUN", "--plan"),
    ("approvals",),
    ("rollback", "RUN"),
    ("state", "main"),
    ("timeline", "main", "Development"),
    ("diff", "RUN", "FAILED"),
    ("diff", "RUN", "RUN", "--json"),
    # A fixed start: the figures per day do not move in the moment between the two commands.
    ("metrics", "main", "--since", "2026-01-01"),
    ("metrics", "main", "staging", "--since", "2026-01-01"),
    ("triggers", "main", "development"),
    ("triggers", "main", "nowhere"),  # an unknown stage: the same message and exit code
]


@pytest.fixture
def served(releaseflow: Releaseflow) -> Releaseflow:
    """A served installation with the acceptance configuration; logins go to its own config folder."""
    releaseflow.extra_env["XDG_CONFIG_HOME"] = str(releaseflow.cwd / "config")
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli("apply", "-f", str(write_config(releaseflow.cwd, releaseflow.url)), check=True)
    releaseflow.serve()
    return releaseflow


def remote(
    releaseflow: Releaseflow, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    secret = token or releaseflow.admin_token
    assert secret
    return releaseflow.cli("--server", releaseflow.url, "--token", secret, *args, timeout=60)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_remote_commands__print_what_the_local_ones_print(served: Releaseflow) -> None:
    followed = remote(
        served, "run", "main", "Development", "--name", "remote", "--arg", "who=far", "--follow"
    )
    assert followed.returncode == 0, followed.stdout + followed.stderr
    run_id = started_run_id(followed.stdout)
    assert f"run {run_id} ended: success" in followed.stdout
    failed = started_run_id(served.cli("run", "main", "Staging", check=True).stdout)
    # Started here (by a person), so that the token may approve it: a token cannot approve its own runs.
    waited = started_run_id(served.cli("run", "main", "Production", check=True).stdout)
    served.wait_for_node(waited, "gate", "waiting")
    for args in (("approvals",), ("approvals", "--for", "alice")):
        assert remote(served, *args).stdout == served.cli(*args).stdout
    assert waited[:8] in remote(served, "approvals").stdout
    approved = remote(served, "approve", waited[:8], "gate", "--as", "alice", "--comment", "fine")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == f"alice approved gate of run {waited}"
    served.wait_for_run(failed, ("failed",))
    served.wait_for_run(waited, ("success",))
    ids = {"RUN": run_id, "FAILED": failed, "WAITED": waited}

    for command in SAME_TEXT:
        args = [ids.get(arg, arg) for arg in command]
        local = served.cli(*args)
        through_server = remote(served, *args)
        assert (through_server.returncode, through_server.stderr) == (local.returncode, local.stderr), args
        assert through_server.stdout == local.stdout, args
        assert local.stdout.strip() or local.stderr.strip(), args


def test_remote_commands__change_runs_on_the_server(served: Releaseflow) -> None:
    run_id = started_run_id(remote(served, "run", "main", "Production", "--name", "gated").stdout)
    served.wait_for_node(run_id, "gate", "waiting")

    renamed = remote(served, "rename", run_id, "--name", "renamed", "--description", "from afar")
    assert renamed.stdout.strip() == f"run {run_id}: name 'renamed', description 'from afar'"
    aborted = remote(served, "abort", run_id)
    assert aborted.returncode == 0 and aborted.stdout.strip().startswith(f"run {run_id}: abort"), aborted
    detail = served.wait_for_run(run_id, ("aborted",))
    assert (detail["displayName"], detail["description"]) == ("renamed", "from afar")
    assert detail["origin"]["kind"] == "token"

    secret = remote(served, "run", "main", "Development", "--secret-arg", "key=hush-hush", "--follow")
    assert secret.returncode == 0, secret.stdout + secret.stderr
    shown = served.run_detail(started_run_id(secret.stdout))
    assert "key" in shown["arguments"] and "hush-hush" not in str(shown)

    failed = started_run_id(remote(served, "run", "main", "Staging").stdout)
    served.wait_for_run(failed, ("failed",))
    resumed = remote(served, "resume", failed[:8], "--follow")
    assert resumed.returncode == 1, resumed.stderr  # it fails again: the endpoint is still missing
    assert f"(resumes {failed}): " in resumed.stdout.splitlines()[0]
    assert "ended: failed" in resumed.stdout

    own = started_run_id(remote(served, "run", "main", "Production").stdout)
    served.wait_for_node(own, "gate", "waiting")
    refused = remote(served, "approve", own, "gate", "--as", "me")
    assert refused.returncode == 2 and "started this run and cannot approve" in refused.stderr, refused
    rejected = started_run_id(served.cli("run", "main", "Production", check=True).stdout)
    served.wait_for_node(rejected, "gate", "waiting")
    assert remote(served, "reject", rejected, "gate", "--as", "bob", "--reason", "not today").returncode == 0
    assert "not today" in str(served.wait_for_run(rejected, ("failed",)))


def test_remote_rollback__previews_like_the_local_one_then_rolls_back(releaseflow: Releaseflow) -> None:
    repository, port = applied_project(releaseflow)
    releaseflow.serve()
    runs = []
    for version in ("v1", "v2"):
        repository.commit(version)
        started = remote(releaseflow, "run", "main", "Development", "--follow")
        assert started.returncode == 0, started.stdout + started.stderr
        runs.append(started_run_id(started.stdout))
    assert answer(port) == "v2"

    server = ("--server", releaseflow.url, "--token", str(releaseflow.admin_token))
    for args in (
        ("rollback", runs[0]),
        ("restore-backup", "main", "Development", "db", "bk-1"),
        ("restore-backup", "main", "development", "db", "bk-1", "--yes"),
    ):
        local = without_terminal(releaseflow, *args)
        through_server = without_terminal(releaseflow, *server, *args)
        assert (through_server.returncode, through_server.stdout, through_server.stderr) == (
            local.returncode,
            local.stdout,
            local.stderr,
        ), args
        assert local.returncode != 0 and local.stderr.strip(), args
    assert "web (service): build builder:" in without_terminal(releaseflow, "rollback", runs[0]).stdout

    done = remote(releaseflow, "rollback", runs[0], "--yes", "--follow")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "web: rolled back to build builder:" in done.stdout
    assert answer(port) == "v1"
    rollback_id = done.stdout.split("started rollback run ")[1].split(":")[0]
    compared = [("show", rollback_id), ("rollbacks", runs[0]), ("status", "main"), ("state", "main")]
    compared += [
        ("timeline", "main", "Development"),
        ("diff", runs[0], runs[1]),
        ("diff", runs[1], rollback_id),
        ("metrics", "main", "Development", "--since", "2026-01-01"),
    ]
    for args in compared:
        assert remote(releaseflow, *args).stdout == releaseflow.cli(*args).stdout
    built = re.findall(r"bld-[0-9A-Za-z]+", json.dumps(releaseflow.run_detail(runs[1])))
    assert built, "the run made no build"
    known = [("logs", "build", built[0]), ("logs", "service", "web", "-n", "3")]
    unknown = [("logs", "job-run", "run-000000000000"), ("logs", "service", "nothing")]
    for args in known + unknown:
        local, through_server = releaseflow.cli(*args), remote(releaseflow, *args)
        assert (through_server.returncode, through_server.stdout, through_server.stderr) == (
            local.returncode,
            local.stdout,
            local.stderr,
        ), args
        if args in unknown:
            assert local.returncode == 2, local
            assert f"no {args[1]} '{args[2]}' with a log releaseflow can read" in one_line_error(local)
        else:
            assert local.returncode == 0 and local.stdout.strip(), local
    assert "PINNED by token:" in releaseflow.cli("status", "main").stdout


def edited_config(served: Releaseflow, name: str, edit: Callable[[dict[str, Any]], object]) -> Path:
    """The acceptance configuration with ``edit`` made to it, written beside it as ``name``."""
    config = yaml.safe_load(write_config(served.cwd, served.url).read_text())
    edit(config)
    path = served.cwd / name
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_remote_apply__plans_and_applies_like_the_local_apply(served: Releaseflow) -> None:
    def change(config: dict[str, Any]) -> None:
        project = config["projects"][0]
        project["resources"]["services"].append({"id": "web", "spec": {"runCommand": "sleep 1"}})
        # The relay flow moves to a file beside the configuration, edited there.
        relay = project["pipelines"][1]["stages"][0]
        flow = relay.pop("releaseFlow")
        flow["spec"]["spec"]["steps"][1]["spec"]["spec"]["message"] = "done, read from a file"
        (served.cwd / "flows").mkdir(exist_ok=True)
        (served.cwd / "flows" / "relay.yaml").write_text(yaml.safe_dump(flow), encoding="utf-8")
        relay["releaseFlowFile"] = "flows/relay.yaml"

    def without_relay(config: dict[str, Any]) -> None:
        del config["projects"][0]["pipelines"][1]

    def invalid(config: dict[str, Any]) -> None:
        pipelines = config["projects"][0]["pipelines"]
        pipelines[0]["stages"][0]["resources"] = ["nothing"]
        pipelines[1]["stages"][0] = {"name": "Development", "releaseFlowFile": "flows/missing.yaml"}

    changed = str(edited_config(served, "changed.yaml", change))
    pruned = str(edited_config(served, "pruned.yaml", without_relay))
    broken = str(edited_config(served, "broken.yaml", invalid))
    compared = {
        "plan": (changed, "--dry-run"),
        "prune": (pruned, "--prune", "--dry-run"),
        "broken": (broken,),
    }
    local = {}
    for name, args in compared.items():
        local[name], through_server = served.cli("apply", "-f", *args), remote(served, "apply", "-f", *args)
        assert (through_server.returncode, through_server.stdout, through_server.stderr) == (
            local[name].returncode,
            local[name].stdout,
            local[name].stderr,
        ), args
    assert local["broken"].returncode == 1
    assert (
        "stages[0].resources[0]" in local["broken"].stderr and "flows/missing.yaml" in local["broken"].stderr
    )
    assert "- pipeline acme/relay" in local["prune"].stdout, local["prune"].stdout
    planned = local["plan"].stdout
    assert "+ resource acme/web (service, local)" in planned, planned
    assert planned.endswith("dry run: nothing was changed\n"), planned

    applied = remote(served, "apply", "-f", changed)
    assert (applied.returncode, applied.stdout) == (0, planned.removesuffix("dry run: nothing was changed\n"))
    # The flow file was read here and sent inline: the server stored what the file says.
    assert "done, read from a file" in served.cli("flow", "relay", "Development").stdout
    again = remote(served, "apply", "-f", changed)
    assert (
        again.stdout.startswith("nothing to change (")
        and again.stdout == served.cli("apply", "-f", changed).stdout
    )


def test_remote_apply__refuses_a_file_of_several_projects_and_a_token_without_admin(
    served: Releaseflow,
) -> None:
    def second_project(config: dict[str, Any]) -> None:
        config["projects"].append({"id": "other"})

    several = str(edited_config(served, "several.yaml", second_project))
    refused = remote(served, "apply", "-f", several)
    assert refused.returncode == 2
    assert f"describes 2 projects ({PROJECT}, other)" in one_line_error(refused)

    single = str(write_config(served.cwd, served.url))
    for role in ("viewer", "deployer"):
        created = remote(served, "token", "create", "--project", PROJECT, "--role", role, "--name", role)
        secret = created.stdout.strip().splitlines()[-1]
        denied = remote(served, "apply", "-f", single, "--dry-run", token=secret)
        assert denied.returncode == 1
        assert "needs the admin role" in one_line_error(denied)


def test_logs_follow__prints_each_new_line_once_here_and_through_a_server(releaseflow: Releaseflow) -> None:
    # A build that writes a numbered line every 0.1 s for 4 s: both follow it while it writes.
    counting = "for i in $(seq 1 40); do echo line $i; sleep 0.1; done"
    repository = AppRepository(releaseflow.cwd / "app")
    releaseflow.cli("db", "migrate", check=True)
    config = write_project(releaseflow.cwd, repository.path, free_port(), build_command=counting)
    releaseflow.cli("apply", "-f", str(config), check=True)
    releaseflow.serve()
    repository.commit("v1")
    run_id = started_run_id(remote(releaseflow, "run", "main", "Development").stdout)

    def started_build() -> str | None:
        built = re.findall(r"bld-[0-9A-Za-z]+", json.dumps(releaseflow.run_detail(run_id)))
        return built[0] if built else None

    build_id = wait_until(started_build, what="the build to start")
    server = ["--server", releaseflow.url, "--token", str(releaseflow.admin_token)]
    followers = [
        subprocess.Popen(
            [*COMMAND, *where, "logs", "build", build_id, "-n", "1", "--follow"],
            cwd=releaseflow.cwd,
            env=releaseflow.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for where in ([], server)
    ]
    try:
        printed = [lines_until(follower, "line 40", timeout=20) for follower in followers]
    finally:
        for follower in followers:
            follower.send_signal(signal.SIGINT)  # Ctrl-C
        ended = [follower.communicate(timeout=10)[1] for follower in followers]
    for follower, errors in zip(followers, ended, strict=True):
        assert (follower.returncode, errors) == (EXIT_INTERRUPTED, b"")
    tails = [
        releaseflow.cli(*where, "logs", "build", build_id, "-n", "1000", check=True).stdout
        for where in ([], server)
    ]
    assert tails[0] == tails[1] and "\nline 40\n" in tails[0]  # the whole log, the same both ways
    whole = tails[0].split("\n")[:-1]
    for lines in printed:
        # The tail it started with, then every line written since, each once and in order.
        start = whole.index(lines[0])
        assert lines == whole[start : start + len(lines)] and "line 40" in lines
        assert lines.index("line 40") > 1, "the log was complete before the follower started"


def lines_until(process: subprocess.Popen[bytes], last: str, *, timeout: float) -> list[str]:
    """The lines ``process`` prints up to ``last``; fails if it has not printed it within ``timeout``.
    Read from the pipe itself: a buffered reader would hold lines that ``select`` no longer sees."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    received = b""
    while f"\n{last}\n" not in "\n" + received.decode():
        ready, _, _ = select.select([process.stdout], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(process.stdout.fileno(), 65536) if ready else b""
        assert chunk, f"no '{last}' within {timeout} s: {received.decode()}"
        received += chunk
    return received.decode().split("\n")[:-1]  # lines end at "\n" only, as a log's do


def test_remote_commands__pin_and_tokens(served: Releaseflow) -> None:
    pinned = remote(served, "pin", "main", "staging", "--reason", "frozen")
    assert pinned.returncode == 0, pinned.stderr
    assert pinned.stdout.startswith("main Staging: pinned by token:") and pinned.stdout.strip().endswith(
        "frozen"
    )
    assert "PINNED by token:" in served.cli("status", "main").stdout
    unpinned = remote(served, "unpin", "main", "Staging")
    assert unpinned.stdout.startswith("main Staging: pin cleared (it was pinned by token:")
    assert remote(served, "unpin", "main", "Staging").stdout.strip() == "main Staging was not pinned"

    rotated = remote(served, "webhook", "rotate", "main", "development")
    assert rotated.returncode == 0 and rotated.stdout.startswith(served.url + "/hooks/release-flows/"), (
        rotated
    )
    assert f"webhook: {rotated.stdout.strip()}" in served.cli("triggers", "main", "Development").stdout
    assert (
        remote(served, "triggers", "main", "development").stdout
        == served.cli("triggers", "main", "Development").stdout
    )

    created = remote(served, "token", "create", "--project", "acme", "--role", "viewer", "--name", "ci")
    assert created.returncode == 0, created.stderr
    assert "'ci': viewer in acme, expires never" in created.stdout
    secret = created.stdout.strip().splitlines()[-1]
    assert remote(served, "runs", "main", "Development", token=secret).returncode == 0
    refused = remote(served, "abort", "nothing", token=secret)
    assert refused.returncode == 1 and "needs the deployer role" in one_line_error(refused)
    revoked = remote(served, "token", "revoke", "ci")
    assert revoked.returncode == 0 and revoked.stdout.startswith("revoked token "), revoked.stderr
    assert "revoked" in served.cli("token", "list").stdout
    assert remote(served, "pipelines", token=secret).returncode == 1


def test_remote_notifications__add_list_log_remove_like_the_local_ones(served: Releaseflow) -> None:
    added = remote(served, "notifications", "add", "--project", "acme", "--url", "http://127.0.0.1:9/hook")
    assert added.returncode == 0, added.stderr
    first, second = added.stdout.splitlines()
    subscription = first.split()[1].rstrip(":")
    assert first.endswith(
        ": webhook http://127.0.0.1:9/hook <- started, succeeded, failed, aborted, rolled-back"
    )
    secret = second.split("keep it with the receiver): ")[1]
    assert len(secret) >= 40, second
    given = remote(
        served, "notifications", "add", "--project", "acme", "--url", "http://127.0.0.1:9/b",
        "--event", "failed", "--secret", "a-secret-of-the-user",
    )  # fmt: skip
    assert given.returncode == 0 and len(given.stdout.splitlines()) == 1, given

    for args in (("list",), ("list", "--project", "acme"), ("log",), ("log", subscription)):
        local = served.cli("notifications", *args)
        through_server = remote(served, "notifications", *args)
        assert (through_server.returncode, through_server.stdout) == (local.returncode, local.stdout), args
    assert subscription in served.cli("notifications", "list").stdout

    unknown = remote(served, "notifications", "remove", "sub-nothing")
    assert unknown.returncode == served.cli("notifications", "remove", "sub-nothing").returncode == 2
    assert "no notification subscription 'sub-nothing' in project 'acme'" in one_line_error(unknown)
    short = remote(served, "notifications", "add", "--project", "acme", "--url", "http://x/", "--secret", "s")
    assert short.returncode != 0 and "secret" in one_line_error(short)
    removed = remote(served, "notifications", "remove", subscription)
    assert removed.stdout.strip() == f"removed subscription {subscription}", removed.stderr
    assert subscription not in served.cli("notifications", "list").stdout


def test_login__saves_the_server_and_logout_forgets_it(served: Releaseflow) -> None:
    assert served.admin_token
    login = served.cli("login", "--server", served.url + "/", "--token", served.admin_token)
    assert login.returncode == 0, login.stderr
    assert f"logged in to {served.url} as token" in login.stdout
    saved = served.cwd / "config" / "releaseflow" / "login.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    # Commands now act through the server, and serve/db stay local.
    assert served.cli("runs", "main", "Development", "--limit", "1").returncode == 0
    assert served.cli("apply", "-f", "releaseflow.yaml", "--dry-run").stdout.startswith("nothing to change")
    assert served.cli("db", "status").returncode == 0

    logout = served.cli("logout")
    assert logout.stdout.strip() == f"logged out of {served.url}"
    assert not saved.exists()
    assert served.cli("logout").stdout.strip() == "not logged in: nothing to forget"


def test_login__refuses_a_wrong_token_and_saves_nothing(served: Releaseflow) -> None:
    login = served.cli("login", "--server", served.url, "--token", "not-a-token")

    assert login.returncode == 1
    assert "refused the token" in one_line_error(login)
    assert not (served.cwd / "config" / "releaseflow" / "login.json").exists()


def test_remote__a_wrong_token_is_one_line_and_exit_1(served: Releaseflow) -> None:
    result = remote(served, "runs", "main", "Development", token="not-a-token")

    assert result.returncode == 1
    assert f"the server at {served.url} refused the token" in one_line_error(result)


def test_remote__an_unreachable_server_is_one_line_and_exit_1(releaseflow: Releaseflow) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    result = releaseflow.cli("--server", nowhere, "--token", "t", "show", "abc", timeout=30)

    assert result.returncode == 1
    assert f"cannot reach the releaseflow server at {nowhere}" in one_line_error(result)


def test_remote_resume_and_plan__take_secret_arguments_like_the_local_ones(served: Releaseflow) -> None:
    hush = "hush-hush-secret"
    for args in (
        ("plan", "main", "Development", "--secret-arg", f"who={hush}"),
        ("plan", "main", "Development", "--secret-arg", f"who={hush}", "--json"),
    ):
        local, through_server = served.cli(*args), remote(served, *args)
        assert (through_server.returncode, through_server.stderr) == (local.returncode, local.stderr), args
        assert through_server.stdout == local.stdout, args
        assert local.returncode == 0 and hush not in local.stdout and "who" in local.stdout, local

    resumed = {}
    for where, command in (("local", served.cli), ("remote", lambda *a: remote(served, *a))):
        failed = started_run_id(served.cli("run", "main", "Staging", check=True).stdout)
        served.wait_for_run(failed, ("failed",))
        answer = command("resume", failed[:8], "--secret-arg", f"token={hush}", "--follow")
        assert answer.returncode == 1 and hush not in answer.stdout + answer.stderr, answer
        resumed[where] = started_run_id(answer.stdout)
        assert "ended: failed" in answer.stdout.replace(resumed[where], "NEW").replace(failed, "OLD")
    # Both resumes hold the secret the same way: its key listed, its value masked, stored encrypted.
    shown = [served.run_detail(run_id) for run_id in resumed.values()]
    assert shown[0]["arguments"] == shown[1]["arguments"] and "token" in shown[0]["arguments"]
    assert hush not in json.dumps(shown) + remote(served, "show", resumed["remote"], "--json").stdout
    assert hush not in served.logs()
    for stored in served.data_dir.glob("releaseflow.db*"):  # the database and its write-ahead log
        assert hush.encode() not in stored.read_bytes(), stored


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("db", "migrate"), "changes this machine's database"),
        (("serve",), "serves this machine's database"),
        (("demo",), "builds a demo on this machine"),
        (("user", "list"), "user accounts are kept in this machine's database"),
        (("--server", "ftp://x", "show", "abc"), "is not an http:// or https:// URL"),
    ],
)
def test_remote__what_cannot_act_remotely_says_so_in_one_line(
    releaseflow: Releaseflow, args: tuple[str, ...], says: str
) -> None:
    server = () if "--server" in args else ("--server", "http://127.0.0.1:9")

    result = releaseflow.cli(*server, "--token", "t", *args)

    assert result.returncode == 2
    assert says in one_line_error(result)

"""Detached processes of the local driver: started apart from releaseflow, known by pid and start time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.cleanup import kill_processes_under
from tests.integration.platform.local_support import eventually

from releaseflow.platform.driver import DriverError
from releaseflow.platform.local import processes
from releaseflow.platform.local.processes import (
    ProcessHandle,
    child_environment,
    group_alive,
    read_marker,
    spawn,
    stop_process,
    tail,
)
from releaseflow.processes import is_alive, read_start_time


@pytest.fixture
async def work(tmp_path: Path) -> AsyncIterator[Path]:
    folder = tmp_path / "work"
    folder.mkdir()
    yield folder
    kill_processes_under(tmp_path)


def children_of(parent: int) -> set[int]:
    found = set()
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(entry.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.add(int(entry.parent.name))
    return found


def child_pids() -> set[int]:
    return children_of(os.getpid())


async def start(work: Path, command: str, **env: str) -> ProcessHandle:
    return await spawn(
        command,
        cwd=work,
        env=child_environment(env),
        log_path=work / "out.log",
        exit_file=work / "exit" / "code",
        banner="test",
    )


async def test_spawn__runs_detached_in_its_own_session(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELEASEFLOW_DATABASE_URL", "sqlite:///secret.db")
    handle = await start(
        work, 'echo "cwd=$(pwd) port=$PORT db=${RELEASEFLOW_DATABASE_URL:-none}"; sleep 30', PORT="1234"
    )
    await eventually(lambda: any(line.startswith("cwd=") for line in handle.log_tail()))

    assert handle.log_tail() == [f"cwd={work} port=1234 db=none"]
    assert os.getsid(handle.pid) == handle.pid  # session leader: no terminal signals reach it
    assert os.getpgid(handle.pid) == handle.pid
    assert os.readlink(f"/proc/{handle.pid}/fd/0") == "/dev/null"
    assert handle.pid not in child_pids()  # re-parented: never releaseflow's zombie
    assert handle.start_time == read_start_time(handle.pid)


async def test_spawn__process_outlives_the_process_that_started_it(work: Path) -> None:
    # A separate interpreter plays releaseflow: it starts the process, prints the handle and exits.
    script = (
        "import asyncio, json, sys\n"
        "from pathlib import Path\n"
        "from releaseflow.platform.local.processes import spawn, child_environment\n"
        "w = Path(sys.argv[1])\n"
        "h = asyncio.run(spawn('sleep 30', cwd=w, env=child_environment(),"
        " log_path=w / 'l', exit_file=w / 'e'))\n"
        "print(json.dumps(h.to_data()))\n"
    )
    starter = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(work), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await starter.communicate()
    assert starter.returncode == 0
    handle = ProcessHandle.from_data(json.loads(out))

    assert handle.is_alive()
    await stop_process(handle, 2.0)
    assert not handle.is_alive()


async def test_process__exit_code_survives_in_its_file_and_quotes_pass_untouched(work: Path) -> None:
    handle = await start(work, """printf '%s\\n' "it's \\"quoted\\" \\$HOME"; exit 3""")
    await eventually(lambda: not handle.is_alive())

    assert handle.exit_code() == 3
    assert handle.log_tail() == ['it\'s "quoted" $HOME']
    assert tail(handle.log_path, 5)[0].startswith("--- releaseflow")  # the banner precedes the process


async def test_process__another_start_time_is_another_process(work: Path) -> None:
    handle = await start(work, "sleep 30")
    impostor = ProcessHandle.from_data({**handle.to_data(), "startTime": handle.start_time + 1})

    assert not is_alive(impostor.pid, impostor.start_time)
    await stop_process(impostor, 0.2)  # must leave the real owner of the pid alone
    assert handle.is_alive()


async def test_stop_process__terminates_the_whole_group_gracefully(work: Path) -> None:
    handle = await start(work, "sleep 30 & sleep 30")
    await eventually(handle.is_alive)

    started = time.monotonic()
    await stop_process(handle, 5.0)

    assert time.monotonic() - started < 2.0  # SIGTERM sufficed
    assert not group_alive(handle.pid)
    assert handle.exit_code() is None  # killed, not ended: no exit code


async def test_stop_process__kills_what_ignores_sigterm(work: Path) -> None:
    handle = await start(work, "trap '' TERM; echo ready; while :; do sleep 0.05; done")
    await eventually(lambda: handle.log_tail() == ["ready"])

    started = time.monotonic()
    await stop_process(handle, 0.5)

    assert time.monotonic() - started >= 0.5
    assert not group_alive(handle.pid)


async def test_spawn__missing_folder_is_refused(work: Path) -> None:
    with pytest.raises(DriverError, match="does not exist") as error:
        await start(work / "missing", "true")
    assert error.value.retryable is False


def test_launcher__killed_once_the_new_process_is_forked__the_command_still_runs(work: Path) -> None:
    """Found in CI (kill -9 of releaseflow's process group at any instant): the new process wrote its
    marker, then could not tell the launcher (killed with the group) and gave up without running the
    command or leaving an exit code, so the next releaseflow saw a started job that died by a signal.

    The launcher is run by hand because its log is a FIFO here, which holds the new process before its
    marker until the launcher is dead (``spawn`` itself writes a banner to the log first)."""
    log, exit_file, marker, effect = work / "out.log", work / "code", work / "marker.json", work / "ran"
    os.mkfifo(log)
    arguments = [str(log), str(exit_file), processes._WRAPPER, f"touch {effect}", str(marker), "-1",
                 processes.now_utc().isoformat(), "0"]  # fmt: skip
    launch = [sys.executable, "-I", "-S", "-c", processes._LAUNCHER, *arguments]
    with subprocess.Popen(launch, cwd=work) as launcher:
        deadline = time.monotonic() + 10
        while not children_of(launcher.pid):  # forked: the new process waits for a reader of its log
            assert time.monotonic() < deadline, "the launcher did not fork"
            time.sleep(0.01)
        launcher.kill()
    with log.open("rb") as output:  # the new process goes on: marker, then the command (or not)
        written = output.read().decode()

    handle = read_marker(marker)
    assert handle is not None, written
    deadline = time.monotonic() + 10
    while handle.exit_code() is None and handle.is_alive():
        assert time.monotonic() < deadline, "the command did not end"
        time.sleep(0.01)
    assert (handle.exit_code(), effect.exists()) == (0, True), written

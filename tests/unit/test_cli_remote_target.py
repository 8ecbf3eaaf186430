"""Where the command line acts: flags over the environment over the saved login; what is refused."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from releaseflow.cli.common import UsageError
from releaseflow.cli.remote import RemoteError, Target, login_file, save_login, saved_login, target_of
from releaseflow.cli.remote_backend import RemoteBackend
from releaseflow.platform.driver import LogSource


def test_target_of__nothing_given_is_the_local_database(tmp_path: Path) -> None:
    assert target_of(None, None, {"XDG_CONFIG_HOME": str(tmp_path)}) is None


def test_target_of__flags_win_over_the_environment(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path), "RELEASEFLOW_SERVER": "http://env", "RELEASEFLOW_TOKEN": "e"}
    assert target_of("https://flag/", "f", environ) == Target("https://flag", "f")
    assert target_of(None, None, environ) == Target("http://env", "e")


def test_target_of__the_saved_login_fills_in_and_can_be_ignored(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    path = save_login(Target("http://saved:8080", "s"), environ)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path == login_file(environ)
    assert target_of(None, None, environ) == Target("http://saved:8080", "s")
    # The saved token goes to its own server only, never to another one.
    assert target_of("http://saved:8080/", None, environ) == Target("http://saved:8080", "s")
    with pytest.raises(UsageError, match="no token for http://other"):
        target_of("http://other", None, environ)
    assert target_of(None, None, environ, use_saved=False) is None


def test_target_of__refuses_what_cannot_work(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    with pytest.raises(UsageError, match="--token needs a server"):
        target_of(None, "t", environ)
    with pytest.raises(UsageError, match="'ftp://x' is not an http:// or https:// URL"):
        target_of("ftp://x", "t", environ)


def test_saved_login__an_unreadable_file_says_what_to_do(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    login_file(environ).parent.mkdir(parents=True)
    login_file(environ).write_text("{not json")

    with pytest.raises(RemoteError, match="run releaseflow login again"):
        saved_login(environ)


async def test_remote_log_tail__lines_end_at_newlines_only_as_locally() -> None:
    """A "\r" of a progress bar stays inside its line, as a local tail keeps it (processes.tail)."""

    class Server:
        async def call(self, method: str, path: str, **options: Any) -> Any:
            if path.endswith("/records"):
                return {"records": [{"id": "node-1"}]}
            assert path.endswith("/records/node-1/log") and options["text"]
            return "fetching 10%\rfetching 100%\nline 1\n"

    backend = RemoteBackend(Server())  # type: ignore[arg-type]

    assert await backend.log_tail("shop", LogSource.BUILD, "bld-1", 10) == [
        "fetching 10%\rfetching 100%",
        "line 1",
    ]

"""Which drivers a process offers, and where the local driver keeps managed PostgreSQL clusters."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from releaseflow.domain.errors import ValidationError
from releaseflow.platform.available import (
    SHARED_ADDONS_ROOT,
    load_registry_credentials,
    managed_addons_root,
    standard_drivers,
)


def test_standard_drivers__local_always_docker_only_with_a_host(tmp_path: Path) -> None:
    assert standard_drivers(tmp_path, docker_host=None, docker_registry=None).names() == ["local"]
    with_docker = standard_drivers(tmp_path, docker_host="unix:///run/podman.sock", docker_registry=None)
    assert with_docker.names() == ["docker", "local"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the fallback exists for releaseflow running as root")
def test_managed_addons_root__a_private_data_directory_falls_back_to_a_shared_root() -> None:
    # Not tmp_path: its parents are private, which is the very case under test.
    base = Path(tempfile.mkdtemp(prefix="rf-addons-root-"))
    base.chmod(0o755)
    private = base / "private"
    private.mkdir(mode=0o700)
    public = base / "public"
    public.mkdir(mode=0o755)
    assert managed_addons_root(public / "data" / "local") == public / "data" / "local" / "postgres"
    fallback = managed_addons_root(private / "data" / "local")
    assert fallback.parent.parent == SHARED_ADDONS_ROOT and fallback.name == "postgres"
    assert managed_addons_root(private / "data" / "local") == fallback
    shutil.rmtree(base)


def test_load_registry_credentials__reads_logins_by_id(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text('{"ghcr": {"username": "me", "password": "s3cret", "registry": "ghcr.io"}}')
    (login,) = load_registry_credentials(path).values()
    assert (login.username, login.password, login.registry) == ("me", "s3cret", "ghcr.io")


def test_load_registry_credentials__names_every_bad_entry(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text('{"a": {"username": "me"}, "b": "nope", "c": {"username": "x", "password": "y"}}')
    with pytest.raises(ValidationError) as caught:
        load_registry_credentials(path)
    assert [issue.path for issue in caught.value.issues] == ["a", "b"]

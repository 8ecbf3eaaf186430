"""The drivers a releaseflow process offers, built from its settings."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from releaseflow.domain.errors import Issue, ReleaseflowError, ValidationError
from releaseflow.domain.spec_schema import SpecSchemas
from releaseflow.platform.docker import specs as docker_specs
from releaseflow.platform.docker.client import RegistryCredentials
from releaseflow.platform.docker.driver import DockerDriver
from releaseflow.platform.driver import DriverRegistry
from releaseflow.platform.local import specs as local_specs
from releaseflow.platform.local.driver import LocalDriver

# Managed PostgreSQL clusters of a data directory that the `postgres` user cannot reach (see below).
SHARED_ADDONS_ROOT = Path("/var/lib/releaseflow")


def standard_drivers(
    data_dir: Path,
    *,
    docker_host: str | None,
    docker_registry: str | None,
    docker_credentials_file: Path | None = None,
) -> DriverRegistry:
    """``local`` always (it needs nothing but this host); ``docker`` when a Docker Engine API is given."""
    drivers = DriverRegistry()
    local_root = data_dir / "local"
    drivers.register(LocalDriver(local_root, addons_root=managed_addons_root(local_root)))
    if docker_host:
        credentials = load_registry_credentials(docker_credentials_file) if docker_credentials_file else {}
        drivers.register(
            DockerDriver(data_dir / "docker", docker_host, registry=docker_registry, credentials=credentials)
        )
    return drivers


def spec_schemas() -> SpecSchemas:
    """The spec schemas of every driver releaseflow knows, by driver then resource kind.

    All of them, whether or not this process is configured to run the driver: a configuration file
    is checked the same way wherever it is validated.
    """
    return {"local": local_specs.SCHEMAS, "docker": docker_specs.SCHEMAS}


def managed_addons_root(local_root: Path) -> Path:
    """Where the local driver's managed PostgreSQL clusters live.

    As root, releaseflow runs them as the ``postgres`` user, which must be able to enter every folder
    above them. A data directory under a private folder (``/root/...``) is not reachable, so their
    clusters go under ``/var/lib/releaseflow/<id of the data directory>/`` instead.
    """
    local_root = local_root.resolve()
    if os.geteuid() != 0 or _enterable_by_everyone(local_root):
        return local_root / "postgres"
    digest = hashlib.sha256(str(local_root).encode()).hexdigest()[:12]
    return SHARED_ADDONS_ROOT / digest / "postgres"


def _enterable_by_everyone(path: Path) -> bool:
    # Folders not created yet will be made with mkdir's default 0755.
    existing = [folder for folder in (*reversed(path.parents), path) if folder.exists()]
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in existing)


def load_registry_credentials(path: Path) -> dict[str, RegistryCredentials]:
    """Saved registry logins by id (what a Release's ``origin.credentials`` names), from a JSON file:
    ``{"<id>": {"username": "...", "password": "...", "registry": "host[:port]"}}``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ReleaseflowError(f"cannot read registry credentials from {path}: {error}") from error
    if not isinstance(document, dict):
        raise ValidationError(
            [Issue("", "must be an object of ids to logins")], subject=f"registry credentials {path}"
        )
    issues = []
    found: dict[str, RegistryCredentials] = {}
    for key, login in document.items():
        fields = login if isinstance(login, dict) else {}
        if not all(isinstance(fields.get(name), str) for name in ("username", "password")):
            issues.append(Issue(key, "must be an object with string username and password (and registry)"))
            continue
        found[key] = RegistryCredentials(
            fields["username"], fields["password"], str(fields.get("registry", ""))
        )
    if issues:
        raise ValidationError(issues, subject=f"registry credentials {path}")
    return found

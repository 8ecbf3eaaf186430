"""The drivers a releaseflow process offers, built from its settings."""

from __future__ import annotations

from pathlib import Path

from releaseflow.platform.docker.driver import DockerDriver
from releaseflow.platform.driver import DriverRegistry
from releaseflow.platform.local.driver import LocalDriver


def standard_drivers(
    data_dir: Path, *, docker_host: str | None, docker_registry: str | None
) -> DriverRegistry:
    """``local`` always (it needs nothing but this host); ``docker`` when a Docker Engine API is given."""
    drivers = DriverRegistry()
    drivers.register(LocalDriver(data_dir / "local"))
    if docker_host:
        drivers.register(DockerDriver(data_dir / "docker", docker_host, registry=docker_registry))
    return drivers

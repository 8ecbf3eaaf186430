"""The docker driver: builds, services and jobs on a Docker Engine API (Docker or podman)."""

from releaseflow.platform.docker.client import DockerClient, RegistryCredentials
from releaseflow.platform.docker.driver import DockerDriver, default_base_url

__all__ = ["DockerClient", "DockerDriver", "RegistryCredentials", "default_base_url"]

"""PostgreSQL addons of the local driver: managed clusters on this host, or external servers.

An addon resource's spec (kind ``addon``)::

    type: postgresql          # required; the only type there is
    database: app_db          # managed: the database to create (default: the addon id, "-" -> "_")
    user: app_db              # managed: its login role (default: the database name)
    version: "15"             # optional: the major version the binaries must have
    externalUrl: postgresql://user:password@host:5432/db   # external: connect to this, run nothing

**Managed** (no ``externalUrl``): ``ensure_running`` creates a cluster of the host's binaries in
``<root>/<project>/<addon>/`` on a free port of 127.0.0.1 (see postgres_cluster.py), with the database
owned by a role with a generated password; as root it runs as the ``postgres`` system user. The cluster
is not a child of releaseflow: it keeps running when releaseflow stops and is adopted by the next
``PostgresAddons`` on the same root through ``postmaster.pid``. **External**: releaseflow only connects.

Jobs and services should receive the connection as environment variables named after the addon id in
upper snake case (``connection_env``): for addon ``main-db``, ``MAIN_DB_DATABASE_URL`` (a libpq URL with
the password) plus ``MAIN_DB_PGHOST``, ``MAIN_DB_PGPORT``, ``MAIN_DB_PGDATABASE``, ``MAIN_DB_PGUSER``,
``MAIN_DB_PGPASSWORD``. When a job uses exactly one addon, also giving it plain ``DATABASE_URL`` is the
convention most frameworks read.

Backups and restores run in processes of their own (postgres_backups.py says what each type and
compression writes; postgres_runs.py how they are started once and adopted); ``backup``/``restore``
answer at once with a ``running`` record and the same idempotency key always answers with the same
record, across restarts and kill -9 of releaseflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from releaseflow.platform.driver import DriverError, Resource
from releaseflow.platform.local import postgres_backups as backups
from releaseflow.platform.local.postgres_backups import BACKUP_TYPES, COMPRESSIONS
from releaseflow.platform.local.postgres_cluster import ClusterState, ManagedCluster, utcnow
from releaseflow.platform.local.postgres_connection import ConnectionTarget, probe
from releaseflow.platform.local.postgres_operation import target_data
from releaseflow.platform.local.postgres_records import Backup, BackupStatus, Records, Restore, key_digest
from releaseflow.platform.local.postgres_runs import RecordRuns
from releaseflow.platform.local.postgres_tools import find_client_tool
from releaseflow.platform.local.specs import PostgresAddonSpec

log = logging.getLogger(__name__)

_PATH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


# -- status --------------------------------------------------------------------------------------------


def env_prefix(addon_id: str) -> str:
    """``main-db`` -> ``MAIN_DB``: the prefix of the variables that carry an addon's connection."""
    prefix = re.sub(r"[^A-Za-z0-9]+", "_", addon_id).strip("_").upper()
    return prefix if prefix and not prefix[0].isdigit() else f"ADDON_{prefix}"


class AddonState(StrEnum):
    RUNNING = "running"  # a connection answered SELECT 1 just now
    STOPPED = "stopped"  # managed: the cluster exists but no postmaster runs (stopped, or host restarted)
    NOT_CREATED = "not_created"  # managed: ensure_running has not created the cluster yet
    UNREACHABLE = "unreachable"  # the server should answer but the check failed; ``message`` says why


@dataclass(frozen=True)
class AddonStatus:
    addon_id: str
    project_id: str
    mode: str  # managed | external
    state: AddonState
    checked_at: datetime
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    version: str | None = None  # server_version as the server reports it, e.g. "15.8 (Debian ...)"
    connection_url: str | None = field(default=None, repr=False)  # with the password: for jobs only
    message: str = ""  # why it is not running, and what to check

    @property
    def running(self) -> bool:
        return self.state is AddonState.RUNNING

    def to_data(self) -> dict[str, Any]:
        """Response data of a node; the password is masked (it is stored and shown in the UI)."""
        redacted = None
        if self.host is not None and self.port is not None and self.database and self.user:
            secret = ConnectionTarget.from_url(self.connection_url).password if self.connection_url else None
            target = ConnectionTarget(self.host, self.port, self.database, self.user, secret)
            redacted = target.url(redact=True)
        return {
            "addonId": self.addon_id,
            "projectId": self.project_id,
            "mode": self.mode,
            "status": self.state.value,
            "running": self.running,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "version": self.version,
            "connectionUrl": redacted,
            "message": self.message or None,
            "checkedAt": self.checked_at.isoformat(),
        }


def _of(addon: Resource, project_id: str, spec: PostgresAddonSpec, run_id: str) -> dict[str, str]:
    """The fields that say whose a backup or restore record is."""
    return {"project_id": project_id, "addon_id": addon.id, "database": spec.database, "run_id": run_id}


# -- the manager ---------------------------------------------------------------------------------------


class PostgresAddons:
    """The PostgreSQL addons of one local driver; all state is JSON under ``root``.

    ``bin_dir`` forces the server binaries' directory; ``server_settings`` are extra
    ``postgresql.conf`` lines for new managed clusters (tests switch durability off with it).
    """

    def __init__(
        self,
        root: Path,
        *,
        bin_dir: Path | None = None,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self._bin_dir = bin_dir
        self._server_settings = dict(server_settings or {})
        records = Records(root)
        self._backups = RecordRuns(records.backups, "backup")
        self._restores = RecordRuns(records.restores, "restore")
        self._locks: dict[Path, asyncio.Lock] = {}
        self._tool_versions: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Settle records left in flight by a dead process; start managed clusters that should run.

        A running postmaster is simply adopted. One that is gone although nobody stopped it (the host
        restarted) is started again, so that addons keep running across reboots like services do.
        """
        await self._backups.settle_all()
        await self._restores.settle_all()
        for state_file in sorted(self.root.glob("*/*/addon.json")):
            cluster = self._cluster(state_file.parent)
            try:
                state = cluster.load_state()
                if state is None or not state.initialized or not state.wanted_running:
                    continue
                pid = cluster.postmaster_pid()
                if pid is not None:
                    log.info(
                        "adopted PostgreSQL addon %s (pid %s, port %s)", state_file.parent, pid, state.port
                    )
                    continue
                async with self._locked(cluster):
                    if cluster.postmaster_pid() is None:
                        log.info("starting PostgreSQL addon %s on port %s", state_file.parent, state.port)
                        await cluster.start(state)
            except Exception:
                # One broken addon must not keep the driver (and the worker) from starting.
                log.exception("could not bring back PostgreSQL addon in %s", state_file.parent)

    async def stop(self) -> None:
        """Leave clusters, backups and restores running: each runs in a process of its own, and the
        next releaseflow process on this root adopts it (postgres_runs.py)."""

    # -- running ---------------------------------------------------------------------------------------

    async def ensure_running(self, addon: Resource, project_id: str) -> AddonStatus:
        """Create the cluster on first use, start it when stopped; raise DriverError if it cannot run."""
        spec = PostgresAddonSpec.parse(addon)
        if spec.managed:
            cluster = self._cluster(self._addon_dir(addon, project_id), spec.version)
            async with self._locked(cluster):
                state = cluster.load_state()
                if state is None or not state.initialized:
                    self._check_version(spec, cluster)
                    if state is not None:
                        await cluster.stop(mode="immediate")  # a half-made cluster from a crash
                    state = await cluster.initialize(spec.user, spec.port)
                else:
                    self._check_version(spec, cluster)
                    if spec.user != state.role:
                        state = self._new_role(state, spec.user)
                    state.wanted_running = True
                    if cluster.postmaster_pid() is None:
                        await cluster.start(state)
                    else:
                        await cluster.wait_until_accepting(state)
                    await cluster.move_to_port(state, spec.port)
                await cluster.provision(state, spec.database)
                state.initialized = True
                cluster.save_state(state)
        status = await self.status(addon, project_id)
        if not status.running:
            raise DriverError(f"PostgreSQL addon '{addon.id}' is not running: {status.message}")
        return status

    async def status(self, addon: Resource, project_id: str) -> AddonStatus:
        """What runs now; ``running`` only when a real connection answered ``SELECT 1``."""
        spec = PostgresAddonSpec.parse(addon)
        now = utcnow()
        if not spec.managed:
            assert spec.external_url is not None
            target = ConnectionTarget.from_url(spec.external_url)
            base = self._status_base(addon, project_id, "external", target, spec.external_url, now)
        else:
            cluster = self._cluster(self._addon_dir(addon, project_id))
            state = cluster.load_state()
            if state is None or not state.initialized:
                return AddonStatus(
                    addon.id,
                    project_id,
                    "managed",
                    AddonState.NOT_CREATED,
                    now,
                    database=spec.database,
                    user=spec.user,
                    message=f"the cluster in {cluster.directory} has not been created yet "
                    "(ensure_running creates it)",
                )
            target = cluster.app_target(state, spec.database)
            base = self._status_base(addon, project_id, "managed", target, target.url(), now)
            if cluster.postmaster_pid() is None:
                return replace(
                    base,
                    state=AddonState.STOPPED,
                    message=f"no PostgreSQL server runs for {cluster.data_dir}; ensure_running starts it",
                )
        result = await probe(target)
        if result.ok:
            return replace(base, state=AddonState.RUNNING, version=result.version)
        return replace(base, state=AddonState.UNREACHABLE, message=result.error)

    async def connection_url(self, addon: Resource, project_id: str) -> str:
        """The libpq URL (password included) a job uses to reach the addon's database."""
        spec = PostgresAddonSpec.parse(addon)
        if spec.external_url is not None:
            return spec.external_url
        cluster = self._cluster(self._addon_dir(addon, project_id))
        state = cluster.load_state()
        if state is None or not state.initialized:
            raise DriverError(
                f"PostgreSQL addon '{addon.id}' has not been created yet; deploy it (ensure_running) before "
                "jobs use it"
            )
        return cluster.app_target(state, spec.database).url()

    async def connection_env(self, addon: Resource, project_id: str) -> dict[str, str]:
        """``<ADDON>_DATABASE_URL`` and ``<ADDON>_PG*`` variables (see the module doc)."""
        url = await self.connection_url(addon, project_id)
        target = ConnectionTarget.from_url(url)
        prefix = env_prefix(addon.id)
        env = {
            f"{prefix}_DATABASE_URL": url,
            f"{prefix}_PGHOST": target.host,
            f"{prefix}_PGPORT": str(target.port),
            f"{prefix}_PGDATABASE": target.dbname,
            f"{prefix}_PGUSER": target.user,
        }
        if target.password is not None:
            env[f"{prefix}_PGPASSWORD"] = target.password
        return env

    async def restart(self, addon: Resource, project_id: str) -> AddonStatus:
        spec = PostgresAddonSpec.parse(addon)
        if not spec.managed:
            raise DriverError(
                f"PostgreSQL addon '{addon.id}' is external (spec.externalUrl): releaseflow does not run it "
                "and cannot restart it; restart it where it runs",
                retryable=False,
            )
        cluster = self._cluster(self._addon_dir(addon, project_id))
        async with self._locked(cluster):
            state = cluster.load_state()
            if state is not None and state.initialized:
                state.wanted_running = True
                cluster.save_state(state)
                await cluster.restart(state)
        if state is None or not state.initialized:
            return await self.ensure_running(addon, project_id)
        status = await self.status(addon, project_id)
        if not status.running:
            raise DriverError(
                f"PostgreSQL addon '{addon.id}' did not come back after restart: {status.message}"
            )
        return status

    async def stop_addon(self, addon: Resource, project_id: str) -> AddonStatus:
        """Stop a managed cluster on purpose; ``start()`` then leaves it stopped."""
        spec = PostgresAddonSpec.parse(addon)
        if not spec.managed:
            raise DriverError(
                f"PostgreSQL addon '{addon.id}' is external; releaseflow cannot stop it", retryable=False
            )
        cluster = self._cluster(self._addon_dir(addon, project_id))
        async with self._locked(cluster):
            state = cluster.load_state()
            if state is not None:
                state.wanted_running = False
                cluster.save_state(state)
            await cluster.stop()
        return await self.status(addon, project_id)

    async def remove(self, addon: Resource, project_id: str) -> None:
        """Stop a managed cluster and delete its data; backups are kept. External: nothing to do."""
        spec = PostgresAddonSpec.parse(addon)
        if not spec.managed:
            return
        cluster = self._cluster(self._addon_dir(addon, project_id))
        async with self._locked(cluster):
            await cluster.remove()

    # -- backups ---------------------------------------------------------------------------------------

    async def backup(
        self,
        addon: Resource,
        project_id: str,
        *,
        backup_type: str = "snapshot",
        compression: str = "gz",
        run_id: str = "",
        key: str,
    ) -> Backup:
        """Start a backup in the background and answer at once (status ``running``)."""
        spec = PostgresAddonSpec.parse(addon)
        if backup_type not in BACKUP_TYPES:
            raise DriverError(
                f"backupType must be one of {', '.join(BACKUP_TYPES)}, not {backup_type!r}", retryable=False
            )
        if compression not in COMPRESSIONS:
            raise DriverError(
                f"compressionType must be one of {', '.join(COMPRESSIONS)}, not {compression!r}",
                retryable=False,
            )
        digest = key_digest("backup", key)
        backup_id = f"bak-{digest[:12]}"
        async with self._backups.lock:
            existing = await self._backups.earlier(
                backup_id,
                lambda found: (
                    (found.addon_id, found.project_id, found.key_digest) == (addon.id, project_id, digest)
                ),
                lambda found: (
                    f"backup {backup_id} of addon '{found.addon_id}' in project '{found.project_id}'"
                ),
            )
            if existing is not None and not self._backups.restartable(existing):
                return existing
            pg_dump = find_client_tool("pg_dump", self._client_bin_dir(addon, project_id))
            layout = backups.choose_layout(
                backup_type, compression, await self._tool_major(pg_dump), jobs=min(4, os.cpu_count() or 1)
            )
            if backups.needs_zstd(layout.name):
                backups.require_program("zstd", "for zstd compression")
            directory = self._addon_dir(addon, project_id) / "backups"
            fields = self._backups.fresh(backup_id, after=existing, **_of(addon, project_id, spec, run_id))
            record = Backup(
                **fields,
                key_digest=digest,
                backup_type=backup_type,
                compression=compression,
                layout=layout.name,
                path=str(directory / f"{backup_id}{layout.suffix}"),
            )
            target, _ = await self._admin_target(spec, addon, project_id)
            operation = {
                "kind": "backup",
                "tool": pg_dump,
                "target": target_data(target),
                "layout": {"name": layout.name, "suffix": layout.suffix, "dumpArgs": list(layout.dump_args)},
                "output": record.path,
            }
            return await self._backups.launch(record, operation, target.password, again=existing)

    async def get_backup(self, backup_id: str) -> Backup:
        return await self._backups.get(backup_id)

    async def list_backups(self, addon: Resource, project_id: str | None = None) -> list[Backup]:
        """The backups of ``addon`` (of any project when ``project_id`` is None), oldest first."""
        found = [
            await self._backups.settle(record)
            for record in await asyncio.to_thread(self._backups.folder.all)
            if record.addon_id == addon.id and project_id in (None, record.project_id)
        ]
        return sorted(found, key=lambda record: record.started_at)

    async def wait_backup(self, backup_id: str, timeout: float) -> Backup:
        """The backup once finished (for callers that must block: tests, the CLI)."""
        return await self._backups.wait(backup_id, timeout)

    # -- restores --------------------------------------------------------------------------------------

    async def restore(
        self, addon: Resource, project_id: str, backup_id: str, key: str, *, run_id: str = ""
    ) -> Restore:
        """Start restoring ``backup_id`` into the addon's database; answers at once (``running``)."""
        spec = PostgresAddonSpec.parse(addon)
        digest = key_digest("restore", key)
        restore_id = f"rst-{digest[:12]}"
        async with self._restores.lock:
            existing = await self._restores.earlier(
                restore_id,
                lambda found: (
                    (found.addon_id, found.backup_id, found.key_digest) == (addon.id, backup_id, digest)
                ),
                lambda found: (
                    f"restore {restore_id} of backup {found.backup_id} into addon '{found.addon_id}'"
                ),
            )
            if existing is not None and not self._restores.restartable(existing):
                return existing
            source = await self.get_backup(backup_id)
            if (source.addon_id, source.project_id) != (addon.id, project_id):
                raise DriverError(
                    f"backup {backup_id} belongs to addon '{source.addon_id}' of project "
                    f"'{source.project_id}', not to '{addon.id}' of '{project_id}'; restore it there",
                    retryable=False,
                )
            if source.status is not BackupStatus.SUCCEEDED:
                raise DriverError(
                    f"backup {backup_id} is {source.status.value}"
                    + (f" ({source.error})" if source.error else "")
                    + "; only a succeeded backup can be restored",
                    retryable=source.status is BackupStatus.RUNNING,
                )
            pg_restore = find_client_tool("pg_restore", self._client_bin_dir(addon, project_id))
            if backups.needs_zstd(source.layout):
                backups.require_program("zstd", "to read a zstd backup")
            fields = self._restores.fresh(restore_id, after=existing, **_of(addon, project_id, spec, run_id))
            record = Restore(**fields, key_digest=digest, backup_id=backup_id)
            target, managed = await self._admin_target(spec, addon, project_id)
            operation = {
                "kind": "restore",
                "tool": pg_restore,
                "target": target_data(target),
                "layout": {"name": source.layout},
                "source": source.path,
                "keepOwners": managed,
            }
            return await self._restores.launch(record, operation, target.password, again=existing)

    async def get_restore(self, restore_id: str) -> Restore:
        return await self._restores.get(restore_id)

    async def wait_restore(self, restore_id: str, timeout: float) -> Restore:
        return await self._restores.wait(restore_id, timeout)

    # -- connections ---------------------------------------------------------------------------------

    async def _admin_target(
        self, spec: PostgresAddonSpec, addon: Resource, project_id: str
    ) -> tuple[ConnectionTarget, bool]:
        """Whom pg_dump/pg_restore connect as: the superuser of a managed cluster (owners are kept),
        the URL's role of an external one. The operation's process checks the connection first, for a
        clear error in its record (postgres_operation.py)."""
        if spec.external_url is not None:
            target, managed = ConnectionTarget.from_url(spec.external_url), False
        else:
            cluster = self._cluster(self._addon_dir(addon, project_id))
            state = cluster.load_state()
            if state is None or not state.initialized:
                raise DriverError(
                    f"PostgreSQL addon '{addon.id}' has not been created; deploy it (ensure_running) first",
                    retryable=False,
                )
            if cluster.postmaster_pid() is None:
                raise DriverError(
                    f"PostgreSQL addon '{addon.id}' is stopped (no server runs for {cluster.data_dir}); "
                    "start it (ensure_running, or an Addon running condition) before a backup or restore"
                )
            target, managed = cluster.admin_target(state, spec.database), True
        return target, managed

    # -- helpers ---------------------------------------------------------------------------------------

    def _addon_dir(self, addon: Resource, project_id: str) -> Path:
        for what, value in (("project id", project_id), ("addon id", addon.id)):
            if not _PATH_ID.fullmatch(value) or ".." in value:
                raise DriverError(
                    f"{what} {value!r} cannot name a folder: use letters, digits, '-', '_' and '.'",
                    retryable=False,
                )
        return self.root / project_id / addon.id

    def _cluster(self, directory: Path, version: str | None = None) -> ManagedCluster:
        bin_dir = self._bin_dir
        if bin_dir is None:
            # A cluster must keep the major version that created it; a new one gets spec.version's.
            major = version
            with contextlib.suppress(OSError):
                major = (directory / "data" / "PG_VERSION").read_text().strip()
            candidate = Path(f"/usr/lib/postgresql/{major}/bin")
            if major is not None and candidate.is_dir():
                bin_dir = candidate
        return ManagedCluster(directory, bin_dir=bin_dir, server_settings=self._server_settings)

    def _client_bin_dir(self, addon: Resource, project_id: str) -> Path | None:
        if self._bin_dir is not None:
            return self._bin_dir
        with contextlib.suppress(OSError):
            major = (self._addon_dir(addon, project_id) / "data" / "PG_VERSION").read_text().strip()
            return Path(f"/usr/lib/postgresql/{major}/bin")
        return None

    @staticmethod
    def _check_version(spec: PostgresAddonSpec, cluster: ManagedCluster) -> None:
        if spec.version is None:
            return
        have = cluster.binaries_version()
        if have and have != spec.version:
            raise DriverError(
                f"spec.version is {spec.version} but the PostgreSQL binaries ({cluster.bin_dir}) or the "
                f"existing cluster are version {have}; install postgresql-{spec.version} or change "
                "spec.version",
                retryable=False,
            )

    @staticmethod
    def _new_role(state: ClusterState, role: str) -> ClusterState:
        return replace(state, role=role, role_password=secrets.token_urlsafe(24))

    @staticmethod
    def _status_base(
        addon: Resource, project_id: str, mode: str, target: ConnectionTarget, url: str, now: datetime
    ) -> AddonStatus:
        return AddonStatus(
            addon.id,
            project_id,
            mode,
            AddonState.UNREACHABLE,
            now,
            host=target.host,
            port=target.port,
            database=target.dbname,
            user=target.user,
            connection_url=url,
        )

    @contextlib.asynccontextmanager
    async def _locked(self, cluster: ManagedCluster) -> AsyncIterator[None]:
        lock = self._locks.setdefault(cluster.directory, asyncio.Lock())
        async with lock, cluster.locked():
            yield

    async def _tool_major(self, tool: str) -> int:
        if tool not in self._tool_versions:
            self._tool_versions[tool] = await backups.tool_major_version(tool)
        return self._tool_versions[tool]

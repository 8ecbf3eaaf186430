"""The files the local driver shares between releaseflow processes: JSON state and lock files.

Every record the local managers keep (builds, job runs, services, deployments, addons, backups) goes
through ``write_json``/``read_json``, so a reader in any releaseflow process sharing the root sees a
whole old file or a whole new one, never half of one; ``platform.file_lock`` serialises work across
them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from releaseflow.platform.driver import DriverError


def write_json(path: Path, data: Mapping[str, Any], *, exclusive: bool = False, mode: int = 0o600) -> bool:
    """Write ``data`` to ``path`` atomically; owner-only by default, since some files hold passwords.

    ``exclusive``: only create, never replace; returns False when ``path`` exists already, which makes
    the file itself a create-once marker shared by every process using the same root.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
        else:
            os.replace(temporary, path)
        return True
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise DriverError(f"disk full: cannot write {path}; free space on that filesystem") from error
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when there is no such file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if not isinstance(value, dict):
        raise DriverError(f"{path} does not hold a JSON object: remove or repair it", retryable=False)
    return value


def optional_time(value: Any) -> datetime | None:
    """A timestamp a record keeps as ISO text, or None where it has none yet (``endedAt``)."""
    return datetime.fromisoformat(str(value)) if value else None

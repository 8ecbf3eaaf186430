"""releaseflow's data on disk is private to the user that runs it.

The SQLite database holds the secret seed behind ``fn.randomSecret`` (and run arguments, which may be
secret too); the drivers' state folders hold logs, connection settings and passwords. Folders
releaseflow creates are made 0700 and the database file 0600 (SQLite gives its ``-wal`` and ``-shm``
files the database file's mode). A database file made by an older version with wider permissions is
narrowed when it is opened; folders that already existed are left as they are (they may be shared on
purpose).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 folders; existing folders are left as they are."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        except FileExistsError:  # made by another process meanwhile: theirs to decide
            continue
        folder.chmod(PRIVATE_DIRECTORY_MODE)  # mkdir's mode passes through the umask; be exact
    return path


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists; narrow an existing file of ours to 0600."""
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE_MODE)
    os.close(descriptor)
    narrow(path)


def narrow(path: Path) -> None:
    """Take group and other permissions away from ``path`` when it exists and this user owns it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        path.chmod(stat.S_IMODE(info.st_mode) & ~0o077)

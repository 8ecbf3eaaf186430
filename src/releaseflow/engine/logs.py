"""Logs of what drivers run (services, job runs, builds), for the interfaces.

The interfaces ask here rather than open a driver's files: where a driver keeps its logs is its own
business, and a driver without logs says so instead of failing somewhere inside.
"""

from __future__ import annotations

from releaseflow.domain.errors import NotFoundError
from releaseflow.platform.driver import DriverRegistry, LogLines, LogReader, LogSource


async def read_logs(
    drivers: DriverRegistry, driver: str, source: LogSource, key: str, *, lines: int
) -> list[str]:
    """The last ``lines`` lines of the log of ``key`` that ``driver`` keeps."""
    return await _reader(drivers, driver).logs(source, key, lines=lines)


async def read_log_lines(
    drivers: DriverRegistry, driver: str, source: LogSource, key: str, *, after: int | None, limit: int
) -> LogLines:
    """The same log's complete lines, numbered: at most ``limit`` past line ``after``, or its last
    ``limit`` (what following a log reads)."""
    return await _reader(drivers, driver).log_lines(source, key, after=after, limit=limit)


def _reader(drivers: DriverRegistry, driver: str) -> LogReader:
    chosen = drivers.get(driver)
    if not isinstance(chosen, LogReader):
        raise NotFoundError(f"the {driver} driver keeps no logs that releaseflow can read")
    return chosen

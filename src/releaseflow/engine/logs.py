"""Logs of what drivers run (services, job runs, builds), for the interfaces.

The interfaces ask here rather than open a driver's files: where a driver keeps its logs is its own
business, and a driver without logs says so instead of failing somewhere inside.
"""

from __future__ import annotations

from releaseflow.domain.errors import NotFoundError
from releaseflow.platform.driver import DriverRegistry, LogReader, LogSource


async def read_logs(
    drivers: DriverRegistry, driver: str, source: LogSource, key: str, *, lines: int
) -> list[str]:
    """The last ``lines`` lines of the log of ``key`` that ``driver`` keeps."""
    chosen = drivers.get(driver)
    if not isinstance(chosen, LogReader):
        raise NotFoundError(f"the {driver} driver keeps no logs that releaseflow can read")
    return await chosen.logs(source, key, lines=lines)

"""The reaper's view of liveness locks: a worker is dead once its lock stayed released for the grace,
within one life of the server, with no failed pass in between."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from releaseflow.engine.reaper import LockWatch

BOOT = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
GRACE = timedelta(seconds=2)


def at(seconds: float) -> datetime:
    return BOOT + timedelta(seconds=seconds)


def test_lock_watch__dead_only_once_released_for_the_whole_grace() -> None:
    watch = LockWatch(GRACE)
    assert watch.dead(BOOT, {"a"}, at(10)) == []
    assert watch.dead(BOOT, {"a"}, at(11.9)) == []
    assert watch.dead(BOOT, {"a", "b"}, at(12)) == ["a"]
    assert watch.dead(BOOT, {"a", "b"}, at(14)) == ["a", "b"]


def test_lock_watch__a_lock_taken_back_starts_the_grace_again() -> None:
    watch = LockWatch(GRACE)
    watch.dead(BOOT, {"a"}, at(10))
    assert watch.dead(BOOT, set(), at(11)) == []  # its connection came back
    assert watch.dead(BOOT, {"a"}, at(12.5)) == []
    assert watch.dead(BOOT, {"a"}, at(14.5)) == ["a"]


def test_lock_watch__a_server_restart_starts_every_grace_again() -> None:
    watch = LockWatch(GRACE)
    watch.dead(BOOT, {"a"}, at(10))
    restarted = at(11)
    # Released since before the restart: the restart released every lock, so that proves nothing.
    assert watch.dead(restarted, {"a"}, at(12.5)) == []
    assert watch.dead(restarted, {"a"}, at(14.5)) == ["a"]


def test_lock_watch__nothing_seen_before_a_failed_pass_counts() -> None:
    watch = LockWatch(GRACE)
    watch.dead(BOOT, {"a"}, at(10))
    watch.forget()  # the database was away
    assert watch.dead(BOOT, {"a"}, at(13)) == []
    assert watch.dead(BOOT, {"a"}, at(15)) == ["a"]

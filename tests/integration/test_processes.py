"""``releaseflow.processes``: the one check of whether a process lives, against real processes."""

from __future__ import annotations

import os
import subprocess
import time

from releaseflow.processes import is_alive, read_start_time, stat_fields


def test_is_alive__a_running_process_and_only_the_one_that_started_then() -> None:
    start_time = read_start_time(os.getpid())

    assert start_time is not None
    assert is_alive(os.getpid())
    assert is_alive(os.getpid(), start_time)
    # The same pid with another start time is a later process that reused it: not the one recorded.
    assert not is_alive(os.getpid(), start_time + 1)


def test_is_alive__a_zombie_and_a_reaped_process_have_ended() -> None:
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        # Not reaped yet: the child stays a zombie until wait() below.
        while (fields := stat_fields(child.pid)) is not None and fields[0] != "Z":
            assert time.monotonic() < deadline, f"child {child.pid} never ended: {fields[0]}"
            time.sleep(0.01)
        assert fields is not None

        assert not is_alive(child.pid)
        assert read_start_time(child.pid) is None
    finally:
        child.wait()
    assert not is_alive(child.pid)


def test_is_alive__a_process_of_another_user_counts() -> None:
    assert is_alive(1)  # init: alive whoever asks, readable or not

"""A driver that costs nothing, so that what a benchmark measures is the engine alone."""

from __future__ import annotations

from typing import Any

from releaseflow.platform.driver import AnswerState, DriverAnswer, DriverRequest

NOOP_DRIVER_NAME = "noop"


class NoopDriver:
    """Answers every operation as done at once, without awaiting anything or keeping records.

    Recording calls (as ``releaseflow.testing.FakeDriver`` does) would add memory churn to the
    figures; a count is all a benchmark needs to check that every node reached the driver.
    """

    name = NOOP_DRIVER_NAME

    def __init__(self) -> None:
        self.performed = 0

    async def perform(self, request: DriverRequest) -> DriverAnswer:
        self.performed += 1
        return DriverAnswer(AnswerState.DONE)

    async def follow(self, request: DriverRequest, handle: Any) -> DriverAnswer:
        # Never reached: perform never answers "in progress". Answer done anyway so a node
        # could not hang if the engine polled after all.
        return DriverAnswer(AnswerState.DONE)

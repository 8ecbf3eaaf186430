"""How the platform executor judges a driver's answer: failures a retry cannot fix are not retried."""

from __future__ import annotations

import pytest

from releaseflow.engine.executors.base import Failed
from releaseflow.engine.executors.platform_nodes import PlatformExecutor
from releaseflow.platform.driver import AnswerState, DriverAnswer


@pytest.mark.parametrize("retryable", [True, False])
def test_judge__a_failed_answer_keeps_whether_a_retry_can_help(retryable: bool) -> None:
    answer = DriverAnswer(
        AnswerState.FAILED, data={"deploymentId": "d-1"}, message="it exited", retryable=retryable
    )

    outcome = PlatformExecutor._judge(answer, waits=True)

    assert isinstance(outcome, Failed)
    assert (outcome.retryable, outcome.message, outcome.data) == (
        retryable,
        "it exited",
        {"deploymentId": "d-1"},
    )


def test_judge__a_failed_answer_is_retryable_unless_the_driver_says_otherwise() -> None:
    outcome = PlatformExecutor._judge(DriverAnswer(AnswerState.FAILED, message="registry away"), waits=False)

    assert isinstance(outcome, Failed) and outcome.retryable is True

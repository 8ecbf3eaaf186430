"""How an exception reads to users: type name and message as written, never a repr."""

from __future__ import annotations

from releaseflow.domain.errors import NotFoundError, describe_error
from releaseflow.store.database import describe


def test_describe_error__type_name_then_the_message_as_written() -> None:
    error = OSError("disk full\nwhile writing 'x'")

    assert describe_error(error) == "OSError: disk full\nwhile writing 'x'"


def test_describe_error__a_releaseflow_error_is_its_message_and_an_empty_one_its_type() -> None:
    assert describe_error(NotFoundError("no run 'r1'")) == "no run 'r1'"
    assert describe_error(TimeoutError()) == "TimeoutError"


def test_describe__is_the_same_text_on_one_line() -> None:
    assert describe(OSError("server closed\n  the connection")) == "OSError: server closed the connection"

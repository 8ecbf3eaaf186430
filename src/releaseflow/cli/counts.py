"""Counts given on the command line (how many lines, runs, deliveries): whole numbers of 1 or more,
refused by argparse in one line otherwise (a negative limit would read as "no limit" to SQLite)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def count(most: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to ``most``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < 1 or (most is not None and value > most):
            bounds = "of 1 or more" if most is None else f"from 1 to {most}"
            raise argparse.ArgumentTypeError(f"{value} is not a count {bounds}")
        return value

    return parse

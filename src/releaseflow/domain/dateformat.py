"""Dates formatted with Moment.js tokens, as Northflank's ``fn.date(format)`` documents them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
# Moment's English "localized" formats, expanded before formatting.
_LOCALE_FORMATS = {
    "LTS": "h:mm:ss A",
    "LT": "h:mm A",
    "LLLL": "dddd, MMMM D, YYYY h:mm A",
    "LLL": "MMMM D, YYYY h:mm A",
    "LL": "MMMM D, YYYY",
    "L": "MM/DD/YYYY",
    "llll": "ddd, MMM D, YYYY h:mm A",
    "lll": "MMM D, YYYY h:mm A",
    "ll": "MMM D, YYYY",
    "l": "M/D/YYYY",
}
_MOMENT_TOKEN = re.compile(
    r"\[[^\]]*\]|LTS|LT|LLLL|LLL|LL|L|llll|lll|ll|l|YYYY|YY|Q|MMMM|MMM|MM|Mo|M|DDDD|DDD|DD|Do|D"
    r"|dddd|ddd|dd|do|d|E|GGGG|GG|WW|W|HH|H|hh|h|kk|k|mm|m|ss|s|S{1,9}|A|a|ZZ|Z|X|x"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ISO_FORMAT = "YYYY-MM-DDTHH:mm:ss.SSS[Z]"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _moment_token(token: str, t: datetime) -> str:
    if token.startswith("S"):
        return f"{t.microsecond:06d}000"[: len(token)]
    hour12 = t.hour % 12 or 12
    weekday = t.isoweekday() % 7  # Moment's d: Sunday is 0
    day_of_year = t.timetuple().tm_yday
    iso_year, iso_week, _ = t.isocalendar()
    values: dict[str, Callable[[], str]] = {
        "YYYY": lambda: f"{t.year:04d}",
        "YY": lambda: f"{t.year % 100:02d}",
        "Q": lambda: str((t.month - 1) // 3 + 1),
        "MMMM": lambda: _MONTHS[t.month - 1],
        "MMM": lambda: _MONTHS[t.month - 1][:3],
        "MM": lambda: f"{t.month:02d}",
        "Mo": lambda: _ordinal(t.month),
        "M": lambda: str(t.month),
        "DDDD": lambda: f"{day_of_year:03d}",
        "DDD": lambda: str(day_of_year),
        "DD": lambda: f"{t.day:02d}",
        "Do": lambda: _ordinal(t.day),
        "D": lambda: str(t.day),
        "dddd": lambda: _WEEKDAYS[weekday],
        "ddd": lambda: _WEEKDAYS[weekday][:3],
        "dd": lambda: _WEEKDAYS[weekday][:2],
        "do": lambda: _ordinal(weekday),
        "d": lambda: str(weekday),
        "E": lambda: str(t.isoweekday()),
        "GGGG": lambda: f"{iso_year:04d}",
        "GG": lambda: f"{iso_year % 100:02d}",
        "WW": lambda: f"{iso_week:02d}",
        "W": lambda: str(iso_week),
        "HH": lambda: f"{t.hour:02d}",
        "H": lambda: str(t.hour),
        "hh": lambda: f"{hour12:02d}",
        "h": lambda: str(hour12),
        "kk": lambda: f"{t.hour or 24:02d}",
        "k": lambda: str(t.hour or 24),
        "mm": lambda: f"{t.minute:02d}",
        "m": lambda: str(t.minute),
        "ss": lambda: f"{t.second:02d}",
        "s": lambda: str(t.second),
        "A": lambda: "PM" if t.hour >= 12 else "AM",
        "a": lambda: "pm" if t.hour >= 12 else "am",
        "ZZ": lambda: "+0000",
        "Z": lambda: "+00:00",
        "X": lambda: str((t - _EPOCH) // timedelta(seconds=1)),
        "x": lambda: str((t - _EPOCH) // timedelta(milliseconds=1)),
    }
    return values[token]()


def format_moment(now: datetime, fmt: str | None = None) -> str:
    """Format ``now`` (converted to UTC) with Moment.js tokens; ``None`` gives ISO 8601 with ms and Z.

    Supported: ``YYYY YY Q M Mo MM MMM MMMM D Do DD DDD DDDD d do dd ddd dddd E W WW GG GGGG H HH h hh
    k kk m mm s ss S..SSSSSSSSS A a Z ZZ X x`` and the English localized formats ``LT LTS L LL LLL
    LLLL l ll lll llll``; ``[text]`` is literal; any other character is copied as is.
    """
    t = now.astimezone(UTC)

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("["):
            return token[1:-1]
        if token in _LOCALE_FORMATS:
            return format_moment(t, _LOCALE_FORMATS[token])
        return _moment_token(token, t)

    return _MOMENT_TOKEN.sub(replace, ISO_FORMAT if fmt is None else fmt)

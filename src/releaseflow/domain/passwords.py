"""User names, passwords and sign-in lockout: the rules, the slow hash, and how long a name is locked.

A password is kept as an scrypt hash (the standard library's memory-hard KDF) with a per-user salt,
in one self-describing string (``scrypt$N$r$p$salt$hash``) so that the cost can be raised later
without losing the hashes made before. The salt comes from the caller: nothing here reads the clock
or the system's randomness.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timedelta

from releaseflow.domain.access import AccessError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
PASSWORD_MIN = 10
# scrypt reads the whole password; a bound keeps one sign-in from costing more than the others.
PASSWORD_MAX = 1024
SALT_BYTES = 16
# N=2^14, r=8: 16 MiB and some tens of milliseconds per hash, the cost OWASP lists for scrypt.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_KEY_BYTES = 32
_MAX_MEMORY = 64 * 1024 * 1024

# Failed sign-ins to one name before it is locked, the first lock, and the longest one.
FAILURES_BEFORE_LOCK = 5
FIRST_LOCK = timedelta(seconds=30)
LONGEST_LOCK = timedelta(minutes=15)


def user_name(text: str) -> str:
    """A user's name as stored: trimmed and lower case (``Alice`` and ``alice`` are one person)."""
    name = text.strip().lower()
    if not NAME_PATTERN.match(name):
        raise AccessError(
            f"the user name '{text}' is not valid: 1 to 64 characters, letters, digits and . _ @ -,"
            " starting with a letter or a digit"
        )
    return name


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise AccessError(f"the password is too short: at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise AccessError(f"the password is too long: at most {PASSWORD_MAX} characters")
    if password != password.strip():
        raise AccessError("the password starts or ends with white space (a copy-paste slip?)")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEMORY, dklen=_KEY_BYTES
    )


def hash_password(password: str, salt: bytes) -> str:
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def password_matches(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (compared in constant time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


def locked_until(failures: int, last_failure: datetime) -> datetime | None:
    """When a name with ``failures`` failed sign-ins in a row, the last at ``last_failure``, may
    try again; None: it is not locked. Each failure past the limit doubles the lock."""
    if failures < FAILURES_BEFORE_LOCK:
        return None
    lock = min(FIRST_LOCK * (1 << min(failures - FAILURES_BEFORE_LOCK, 10)), LONGEST_LOCK)
    return last_failure + lock

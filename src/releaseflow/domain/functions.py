"""The ``${fn.<name>(...)}`` library: a registry from function name to implementation and arity.

Names and argument orders follow Northflank's "Make a template dynamic: Use Northflank functions".
Where Northflank's documentation is silent, releaseflow decides as follows (and tests it):

Values and types
    Values are JSON values (null, booleans, numbers, strings, arrays, objects). A string argument also
    accepts a number or boolean (converted as JavaScript's ``String()`` would); a number argument also
    accepts a numeric string such as ``"3"`` (template arguments are strings). Anything else is an
    ``ExpressionError`` naming the function, the argument and what it got. Numeric results that are
    whole and below 2**53 are integers (``divide(6, 3)`` is ``2``, as in JavaScript).

Truthiness (boolean functions, ``if``, predicates)
    JavaScript's, with one change: null, false, 0, NaN and ``""`` are false, and so is the string
    ``"false"`` in any case (arguments are strings, and ``"false"`` being true is a trap); everything
    else, including ``"0"``, ``[]`` and ``{}``, is true. An unresolved reference or argument arrives as
    null, so it is false, as Northflank documents.

Equality (``eq``/``neq``)
    Strict and deep: ``1`` equals ``1.0``, but ``"1"`` does not equal ``1`` and ``true`` does not equal
    ``1``; arrays and objects compare by content. ``eq(a, b, c)`` is true when all are equal;
    ``neq(a, b, ...)`` is its negation (true unless all are equal).

``if``, ``and``, ``or``
    Evaluate lazily and short-circuit, so ``if(eq(args.N, 0), 0, divide(10, args.N))`` works.
    ``if`` without an ``else`` yields null. ``and``/``or`` return booleans.

``gt``/``lt``/``gte``/``lte`` compare numbers (numeric strings accepted); other values are an error.

Maths
    ``subtract(a, b, c)`` is ``a - b - c``; ``remainder`` has JavaScript's sign (that of ``a``);
    ``exp(a, b)`` is ``a`` to the power ``b``. Division or remainder by zero, results that are not
    finite, and integers beyond 2**1024 are errors.

Strings
    Indexes count code points. ``slice``/``arrSlice`` follow JavaScript's ``slice`` (negative indexes
    count from the end; ``end`` is optional). A pattern (``search``, ``replace``, ``replaceAll``,
    ``split``) is a plain string matched literally, or a regular-expression literal ``/.../flags``
    written directly in the call (Python ``re`` syntax; flags ``i``, ``m``, ``s``, and ``g``, which
    makes ``replace`` replace every match). Replacement text is literal (no ``$1`` substitution).
    ``slug`` lowercases, drops accents, and turns every run of other characters into one ``-``.
    ``join`` uses ``","`` when no separator is given (JavaScript's default); null items join as
    ``""`` and arrays/objects as JSON. ``length`` is for strings (``arrLength`` for arrays).
    ``fromBase64`` accepts standard or URL-safe base64 with or without padding; the bytes must be UTF-8.

Objects
    ``get(object, path)`` takes a path such as ``"a.b.0"`` or ``"a.b[0]"`` (or an array of keys) and
    yields null where the path does not exist. ``parseJSON`` raises on text that is not JSON (Northflank
    returns ``''``; an error that names the text is more useful in a release). ``keys``/``values``/
    ``entries`` also accept arrays (keys are the indexes as strings, as in JavaScript).

Arrays
    ``find``/``some``/``every``/``filter``/``map`` take a function literal written in the call:
    ``fn.filter(refs.svc.ports, (port, index) => fn.eq(port.public, true))`` or ``p => p.name``
    (zero, one or two parameters: the item and its index). ``find`` yields null when nothing matches.
    ``concat`` spreads array arguments and appends any other value, as JavaScript does.

``date(format?)``
    The scope's ``now`` in UTC. Without a format: ISO 8601 with milliseconds, ``2025-05-14T22:00:00.000Z``.
    A format uses Moment.js tokens (see ``format_moment``); text in ``[brackets]`` is literal.

``randomSecret(length, 'base64'|'hex')`` and ``randomString(length)``
    Exactly ``length`` characters (1..4096): standard base64 alphabet without padding (the default) or
    lowercase hex; ``randomString`` uses ``[A-Za-z0-9]``. They are stable across runs of the same flow:
    the characters come from HMAC-SHA256 keyed with the scope's ``secret_seed`` over the function name,
    its arguments, the JSON path of the field and the call's position among random calls in that field,
    so two fields (or two calls in one field) never share a secret, and moving a field changes it.

``fetchSecret(id)`` returns the scope's secret ``id`` (an error if there is none).

``shellQuote(value)`` and ``shellRaw(value)``
    The value's text quoted as one shell word, and the value's text to be evaluated by the shell. What
    they mean in command fields (where every other value is quoted for you) is in ``shell``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from releaseflow.domain.dateformat import format_moment
from releaseflow.domain.errors import ExpressionError
from releaseflow.domain.shell import quote_word

# A function literal ``(item, index) => body`` as the evaluator hands it to a higher-order function.
Predicate = Callable[[Any, int], Any]
# A lazily evaluated argument (``if``/``and``/``or``).
Thunk = Callable[[], Any]

MAX_RANDOM_LENGTH = 4096
_MAX_SAFE_INTEGER = 2**53
_MAX_INTEGER = 2**1024


@dataclass(frozen=True)
class RegexValue:
    """A regular-expression literal ``/pattern/flags``; only ever passed to a pattern argument."""

    pattern: re.Pattern[str]
    global_: bool
    source: str


@dataclass(frozen=True)
class CallContext:
    """What a function may know besides its arguments; built by the evaluator for each call."""

    now: datetime
    secret_seed: str = ""
    secrets: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""  # JSON path of the field being resolved (random functions derive from it)
    occurrence: int = 0  # position of this call among randomSecret/randomString calls in the field


class Args:
    """The evaluated arguments of one call, with typed accessors that fail with a clear message."""

    def __init__(self, name: str, values: Sequence[Any]) -> None:
        self.name = name
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def raw(self, i: int, default: Any = None) -> Any:
        return self.values[i] if i < len(self.values) else default

    def fail(self, i: int, expected: str) -> NoReturn:
        raise ExpressionError(
            f"fn.{self.name}: argument {i + 1} must be {expected}, got {describe(self.raw(i))}"
        )

    def text(self, i: int) -> str:
        value = self.raw(i)
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return to_text(value)
        self.fail(i, "a string")

    def number(self, i: int) -> int | float:
        value = self.raw(i)
        number = to_number(value)
        if number is None:
            self.fail(i, "a number")
        return number

    def integer(self, i: int) -> int:
        number = self.number(i)
        if isinstance(number, float):
            if not number.is_integer():
                self.fail(i, "a whole number")
            return int(number)
        return number

    def array(self, i: int) -> list[Any]:
        value = self.raw(i)
        if not isinstance(value, list | tuple):
            self.fail(i, "an array")
        return list(value)

    def pattern(self, i: int) -> str | RegexValue:
        value = self.raw(i)
        return value if isinstance(value, RegexValue) else self.text(i)

    def predicate(self, i: int) -> Predicate:
        value = self.raw(i)
        if not callable(value):  # the parser guarantees a function literal here; guard anyway
            self.fail(i, "a function literal such as (item, index) => ...")
        return value  # type: ignore[no-any-return]

    def force(self, i: int) -> Any:
        """Evaluate the lazy argument ``i`` (``if``/``and``/``or``)."""
        thunk: Thunk = self.values[i]
        return thunk()


Impl = Callable[[CallContext, Args], Any]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    min_args: int
    max_args: int | None  # None: any number
    impl: Impl
    predicate_positions: frozenset[int] = frozenset()  # 0-based: a function literal goes here
    pattern_positions: frozenset[int] = frozenset()  # 0-based: a regex literal may go here
    lazy: bool = False  # arguments arrive as thunks

    def arity_error(self, count: int) -> str | None:
        """The message for calling with ``count`` arguments, or None when that is allowed."""
        if self.min_args <= count and (self.max_args is None or count <= self.max_args):
            return None
        if self.max_args is None:
            wanted = f"at least {self.min_args}"
        elif self.min_args == self.max_args:
            wanted = str(self.min_args)
        else:
            wanted = f"{self.min_args} to {self.max_args}"
        plural = "" if wanted == "1" else "s"
        return f"fn.{self.name} takes {wanted} argument{plural}, got {count}"


FUNCTIONS: dict[str, FunctionSpec] = {}


def _fn(
    name: str,
    min_args: int,
    max_args: int | None,
    *,
    predicate: int | None = None,
    pattern: int | None = None,
    lazy: bool = False,
) -> Callable[[Impl], Impl]:
    def register(impl: Impl) -> Impl:
        FUNCTIONS[name] = FunctionSpec(
            name,
            min_args,
            max_args,
            impl,
            frozenset() if predicate is None else frozenset({predicate}),
            frozenset() if pattern is None else frozenset({pattern}),
            lazy,
        )
        return impl

    return register


# --- value helpers shared with the evaluator -------------------------------------------------------


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, RegexValue):
        return "regular expression"
    if callable(value):
        return "function"
    return type(value).__name__


def describe(value: Any) -> str:
    """``string 'abc'``, ``number 3``, ``null``: for error messages, clipped."""
    name = type_name(value)
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"{name} {shown!r}"
    if isinstance(value, bool | float):
        return f"{name} {to_text(value)}"
    if isinstance(value, int):
        return f"{name} {to_text(value)}" if abs(value) < 10**40 else f"{name} (huge)"
    return name


def normalize_number(value: int | float) -> int | float:
    """Whole floats become ints (JavaScript prints ``6/3`` as ``2``); out-of-range results fail."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError("the result is not a finite number")
        if value.is_integer() and abs(value) < _MAX_SAFE_INTEGER:
            return int(value)
        return value
    if abs(value) > _MAX_INTEGER:
        raise ExpressionError("the result is too large")
    return value


_NUMERIC_TEXT = re.compile(r"\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*")


def to_number(value: Any) -> int | float | None:
    """A number, or a numeric string as a number; None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and len(value) <= 400 and _NUMERIC_TEXT.fullmatch(value):
        text = value.strip()
        if re.fullmatch(r"[-+]?[0-9]+", text):
            return int(text)
        number = float(text)
        return number if math.isfinite(number) else None
    return None


def truthy(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != "" and value.strip().lower() != "false"
    return True


def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if a is None or b is None:
        return a is None and b is None
    return type(a) is type(b) and bool(a == b)


def to_json(value: Any) -> str:
    """Compact JSON, as JavaScript's ``JSON.stringify`` writes it."""
    if isinstance(value, RegexValue) or callable(value):
        raise ExpressionError(f"a {type_name(value)} cannot be turned into text")
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    except (ValueError, RecursionError) as exc:
        raise ExpressionError(f"the value cannot be written as JSON ({exc})") from exc


def to_text(value: Any) -> str:
    """How a value reads inside surrounding text: null as nothing, booleans and numbers as in JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError as exc:  # more digits than Python will print
            raise ExpressionError("the number is too large to write") from exc
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _MAX_SAFE_INTEGER:
            return str(int(value))
        return repr(value) if math.isfinite(value) else ("NaN" if math.isnan(value) else "Infinity")
    return to_json(value)


# --- general ----------------------------------------------------------------------------------------


@_fn("date", 0, 1)
def _date(ctx: CallContext, a: Args) -> Any:
    fmt = a.raw(0)
    return format_moment(ctx.now, None if fmt is None else a.text(0))


def _random_bytes(ctx: CallContext, name: str, params: list[Any]) -> Iterator[int]:
    info = json.dumps(["releaseflow/fn/v1", name, ctx.path, ctx.occurrence, params]).encode()
    key = ctx.secret_seed.encode("utf-8", "surrogatepass")
    counter = 0
    while True:  # HKDF-expand style: HMAC over (info, counter) blocks, as many as the caller takes
        counter += 1
        yield from hmac.new(key, info + counter.to_bytes(4, "big"), hashlib.sha256).digest()


def _random_length(a: Args) -> int:
    length = a.integer(0)
    if not 1 <= length <= MAX_RANDOM_LENGTH:
        a.fail(0, f"a length from 1 to {MAX_RANDOM_LENGTH}")
    return length


@_fn("randomSecret", 1, 2)
def _random_secret(ctx: CallContext, a: Args) -> Any:
    length = _random_length(a)
    encoding = "base64" if a.raw(1) is None else a.text(1)
    if encoding not in ("base64", "hex"):
        a.fail(1, "'base64' or 'hex'")
    stream = _random_bytes(ctx, "randomSecret", [length, encoding])
    data = bytes(next(stream) for _ in range(length))  # more than enough for either encoding
    text = data.hex() if encoding == "hex" else base64.b64encode(data).decode().rstrip("=")
    return text[:length]


_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@_fn("randomString", 1, 1)
def _random_string(ctx: CallContext, a: Args) -> Any:
    length = _random_length(a)
    chars: list[str] = []
    for byte in _random_bytes(ctx, "randomString", [length]):
        if byte < 248:  # 248 = 4 * 62: rejecting the rest keeps every character equally likely
            chars.append(_ALPHANUMERIC[byte % 62])
            if len(chars) == length:
                break
    return "".join(chars)


@_fn("fetchSecret", 1, 1)
def _fetch_secret(ctx: CallContext, a: Args) -> Any:
    secret_id = a.text(0)
    if secret_id not in ctx.secrets:
        raise ExpressionError(f"fn.fetchSecret: secret '{secret_id}' is not defined")
    return ctx.secrets[secret_id]


# --- strings ----------------------------------------------------------------------------------------


@_fn("toBase64", 1, 1)
def _to_base64(ctx: CallContext, a: Args) -> Any:
    return base64.b64encode(a.text(0).encode("utf-8")).decode("ascii")


@_fn("fromBase64", 1, 1)
def _from_base64(ctx: CallContext, a: Args) -> Any:
    text = "".join(a.text(0).split()).replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ExpressionError(f"fn.fromBase64: {describe(a.raw(0))} is not valid base64") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExpressionError("fn.fromBase64: the decoded bytes are not UTF-8 text") from exc


@_fn("slug", 1, 1)
def _slug(ctx: CallContext, a: Args) -> Any:
    ascii_text = unicodedata.normalize("NFKD", a.text(0)).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


@_fn("shellQuote", 1, 1)
def _shell_quote(ctx: CallContext, a: Args) -> Any:
    """The value's text as one shell word whose characters are all literal (see ``shell``)."""
    return quote_word(to_text(a.raw(0)))


@_fn("shellRaw", 1, 1)
def _shell_raw(ctx: CallContext, a: Args) -> Any:
    """The value's text, marked for a command field to take unquoted: the shell evaluates it."""
    return to_text(a.raw(0))


@_fn("indexOf", 2, 2)
def _index_of(ctx: CallContext, a: Args) -> Any:
    return a.text(0).find(a.text(1))


@_fn("search", 2, 2, pattern=1)
def _search(ctx: CallContext, a: Args) -> Any:
    text, pattern = a.text(0), a.pattern(1)
    if isinstance(pattern, str):
        return text.find(pattern)
    match = pattern.pattern.search(text)
    return -1 if match is None else match.start()


def _replace(a: Args, every: bool) -> str:
    text, pattern, replacement = a.text(0), a.pattern(1), a.text(2)
    if isinstance(pattern, str):
        return text.replace(pattern, replacement, -1 if every else 1)
    count = 0 if every or pattern.global_ else 1
    return pattern.pattern.sub(lambda _match: replacement, text, count=count)


@_fn("replace", 3, 3, pattern=1)
def _replace_first(ctx: CallContext, a: Args) -> Any:
    return _replace(a, every=False)


@_fn("replaceAll", 3, 3, pattern=1)
def _replace_all(ctx: CallContext, a: Args) -> Any:
    return _replace(a, every=True)


@_fn("slice", 2, 3)
def _slice(ctx: CallContext, a: Args) -> Any:
    end = None if a.raw(2) is None else a.integer(2)
    return a.text(0)[a.integer(1) : end]


@_fn("length", 1, 1)
def _length(ctx: CallContext, a: Args) -> Any:
    if isinstance(a.raw(0), list | tuple):
        a.fail(0, "a string (use fn.arrLength for arrays)")
    return len(a.text(0))


@_fn("toUpper", 1, 1)
def _to_upper(ctx: CallContext, a: Args) -> Any:
    return a.text(0).upper()


@_fn("toLower", 1, 1)
def _to_lower(ctx: CallContext, a: Args) -> Any:
    return a.text(0).lower()


@_fn("split", 2, 3, pattern=1)
def _split(ctx: CallContext, a: Args) -> Any:
    text, separator = a.text(0), a.pattern(1)
    limit = None if a.raw(2) is None else a.integer(2)
    if isinstance(separator, RegexValue):
        parts = [p or "" for p in separator.pattern.split(text)]
    elif separator == "":
        parts = list(text)  # JavaScript splits into characters
    else:
        parts = text.split(separator)
    return parts if limit is None else parts[: max(limit, 0)]


@_fn("join", 1, 2)
def _join(ctx: CallContext, a: Args) -> Any:
    items = a.array(0)
    separator = "," if a.raw(1) is None else a.text(1)
    return separator.join(to_text(item) for item in items)


# --- booleans ---------------------------------------------------------------------------------------


@_fn("not", 1, 1)
def _not(ctx: CallContext, a: Args) -> Any:
    return not truthy(a.raw(0))


@_fn("or", 1, None, lazy=True)
def _or(ctx: CallContext, a: Args) -> Any:
    return any(truthy(a.force(i)) for i in range(len(a)))


@_fn("and", 1, None, lazy=True)
def _and(ctx: CallContext, a: Args) -> Any:
    return all(truthy(a.force(i)) for i in range(len(a)))


@_fn("if", 2, 3, lazy=True)
def _if(ctx: CallContext, a: Args) -> Any:
    if truthy(a.force(0)):
        return a.force(1)
    return a.force(2) if len(a) > 2 else None


@_fn("eq", 2, None)
def _eq(ctx: CallContext, a: Args) -> Any:
    return all(json_equal(a.values[0], other) for other in a.values[1:])


@_fn("neq", 2, None)
def _neq(ctx: CallContext, a: Args) -> Any:
    return not all(json_equal(a.values[0], other) for other in a.values[1:])


def _compare(name: str, test: Callable[[int | float, int | float], bool]) -> None:
    _fn(name, 2, 2)(lambda ctx, a: test(a.number(0), a.number(1)))


_compare("gt", lambda x, y: x > y)
_compare("lt", lambda x, y: x < y)
_compare("gte", lambda x, y: x >= y)
_compare("lte", lambda x, y: x <= y)


# --- maths ------------------------------------------------------------------------------------------


@_fn("add", 2, None)
def _add(ctx: CallContext, a: Args) -> Any:
    total: int | float = 0
    for i in range(len(a)):
        total = normalize_number(total + a.number(i))
    return total


@_fn("subtract", 2, None)
def _subtract(ctx: CallContext, a: Args) -> Any:
    total = a.number(0)
    for i in range(1, len(a)):
        total = normalize_number(total - a.number(i))
    return total


@_fn("multiply", 2, None)
def _multiply(ctx: CallContext, a: Args) -> Any:
    total: int | float = 1
    for i in range(len(a)):
        factor = a.number(i)
        # checked before multiplying: a huge product would take long to compute at all
        if (
            isinstance(total, int)
            and isinstance(factor, int)
            and total.bit_length() + factor.bit_length() > 1100
        ):
            raise ExpressionError("fn.multiply: the result is too large")
        total = normalize_number(total * factor)
    return total


def _divisor(a: Args) -> int | float:
    divisor = a.number(1)
    if divisor == 0:
        raise ExpressionError(f"fn.{a.name}: division by zero")
    return divisor


@_fn("divide", 2, 2)
def _divide(ctx: CallContext, a: Args) -> Any:
    dividend, divisor = a.number(0), _divisor(a)
    if isinstance(dividend, int) and isinstance(divisor, int) and dividend % divisor == 0:
        return normalize_number(dividend // divisor)  # exact, even beyond float precision
    return normalize_number(dividend / divisor)


@_fn("remainder", 2, 2)
def _remainder(ctx: CallContext, a: Args) -> Any:
    dividend, divisor = a.number(0), _divisor(a)
    if isinstance(dividend, int) and isinstance(divisor, int):
        rest = abs(dividend) % abs(divisor)
        return -rest if dividend < 0 else rest  # JavaScript: the sign of the dividend
    return normalize_number(math.fmod(dividend, divisor))


@_fn("exp", 2, 2)
def _exp(ctx: CallContext, a: Args) -> Any:
    base, exponent = a.number(0), a.number(1)
    if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
        # estimated before computing: 10**10**9 would otherwise hang the engine
        if abs(base) > 1 and exponent * abs(base).bit_length() > 1100:
            raise ExpressionError("fn.exp: the result is too large")
        return normalize_number(base**exponent)
    return normalize_number(math.pow(base, exponent))


@_fn("floor", 1, 1)
def _floor(ctx: CallContext, a: Args) -> Any:
    return normalize_number(math.floor(a.number(0)))


@_fn("ceil", 1, 1)
def _ceil(ctx: CallContext, a: Args) -> Any:
    return normalize_number(math.ceil(a.number(0)))


# --- objects ----------------------------------------------------------------------------------------


def _get_path(a: Args) -> list[str]:
    raw = a.raw(1)
    if isinstance(raw, list | tuple):
        return [to_text(part) for part in raw]
    text = a.text(1)
    return [part.strip("'\"") for part in re.findall(r"[^.\[\]]+", text)]


@_fn("get", 2, 2)
def _get(ctx: CallContext, a: Args) -> Any:
    current = a.raw(0)
    if not (current is None or isinstance(current, Mapping | list | tuple)):
        a.fail(0, "an object or array")
    for key in _get_path(a):
        if isinstance(current, Mapping):
            current = current.get(key)
        elif isinstance(current, list | tuple) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            return None
    return current


@_fn("stringifyJSON", 1, 1)
def _stringify_json(ctx: CallContext, a: Args) -> Any:
    return to_json(a.raw(0))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@_fn("parseJSON", 1, 1)
def _parse_json(ctx: CallContext, a: Args) -> Any:
    text = a.text(0)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ExpressionError(f"fn.parseJSON: {describe(text)} is not valid JSON") from exc


def _object_items(a: Args) -> list[tuple[str, Any]]:
    value = a.raw(0)
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [(str(i), v) for i, v in enumerate(value)]
    a.fail(0, "an object")


@_fn("entries", 1, 1)
def _entries(ctx: CallContext, a: Args) -> Any:
    return [[k, v] for k, v in _object_items(a)]


@_fn("values", 1, 1)
def _values(ctx: CallContext, a: Args) -> Any:
    return [v for _, v in _object_items(a)]


@_fn("keys", 1, 1)
def _keys(ctx: CallContext, a: Args) -> Any:
    return [k for k, _ in _object_items(a)]


# --- arrays -----------------------------------------------------------------------------------------


@_fn("find", 2, 2, predicate=1)
def _find(ctx: CallContext, a: Args) -> Any:
    test = a.predicate(1)
    return next((item for i, item in enumerate(a.array(0)) if truthy(test(item, i))), None)


@_fn("some", 2, 2, predicate=1)
def _some(ctx: CallContext, a: Args) -> Any:
    test = a.predicate(1)
    return any(truthy(test(item, i)) for i, item in enumerate(a.array(0)))


@_fn("every", 2, 2, predicate=1)
def _every(ctx: CallContext, a: Args) -> Any:
    test = a.predicate(1)
    return all(truthy(test(item, i)) for i, item in enumerate(a.array(0)))


@_fn("filter", 2, 2, predicate=1)
def _filter(ctx: CallContext, a: Args) -> Any:
    test = a.predicate(1)
    return [item for i, item in enumerate(a.array(0)) if truthy(test(item, i))]


@_fn("map", 2, 2, predicate=1)
def _map(ctx: CallContext, a: Args) -> Any:
    transform = a.predicate(1)
    return [transform(item, i) for i, item in enumerate(a.array(0))]


@_fn("concat", 1, None)
def _concat(ctx: CallContext, a: Args) -> Any:
    result = a.array(0)
    for value in a.values[1:]:
        if isinstance(value, list | tuple):
            result.extend(value)
        else:
            result.append(value)
    return result


@_fn("arrSlice", 2, 3)
def _arr_slice(ctx: CallContext, a: Args) -> Any:
    end = None if a.raw(2) is None else a.integer(2)
    return a.array(0)[a.integer(1) : end]


@_fn("arrLength", 1, 1)
def _arr_length(ctx: CallContext, a: Args) -> Any:
    return len(a.array(0))

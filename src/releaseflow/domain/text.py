"""Text that people give releaseflow (names, descriptions) and that it shows back to them.

A name or description is printed on terminals, written into logs and sent in HTTP answers. A control
character in it can move the cursor, recolour or clear a terminal (ESC sequences), cut a C string
(NUL), or make text read differently from what it is (bidirectional overrides, invisible joiners).
None of these has a use in a name, so they are refused where the text comes in (``unsafe_characters``),
and text of unknown origin is escaped where it goes out (``escape_text``).

The classes refused are Unicode's "other" categories that never draw anything: Cc (C0 controls
U+0000-U+001F, DEL, C1 controls U+0080-U+009F), Cf (format characters: bidirectional embeddings,
overrides and isolates U+202A-U+202E and U+2066-U+2069, zero-width spaces and joiners, the byte order
mark, soft hyphen...), Cs (lone surrogates), and the line and paragraph separators U+2028/U+2029.
Newlines and tabs are controls too: names and descriptions are one line.
"""

from __future__ import annotations

import unicodedata

# Categories of characters that do not print; see the module docstring.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def is_unsafe_character(char: str) -> bool:
    """Whether ``char`` is a control or invisible formatting character (see the module docstring)."""
    return unicodedata.category(char) in _REFUSED_CATEGORIES


def describe_character(char: str) -> str:
    """``U+001B`` with the character's Unicode name when it has one: ``U+202E (RIGHT-TO-LEFT OVERRIDE)``."""
    name = unicodedata.name(char, "")
    if not name and ord(char) < 0x20:
        name = {0x00: "NULL", 0x09: "TAB", 0x0A: "LINE FEED", 0x0D: "CARRIAGE RETURN", 0x1B: "ESCAPE"}.get(
            ord(char), "CONTROL"
        )
    elif not name:
        name = "CONTROL" if unicodedata.category(char) == "Cc" else ""
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def unsafe_characters(text: str) -> str | None:
    """Why ``text`` is refused as a name or description, or None when it holds no unsafe character.

    The message names the first offending character and its position (1-based, in characters), and how
    many there are in all, e.g. ``must not contain control or invisible formatting characters:
    U+001B (ESCAPE) at character 4``.
    """
    found = [(index, char) for index, char in enumerate(text, start=1) if is_unsafe_character(char)]
    if not found:
        return None
    index, char = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return (
        "must not contain control or invisible formatting characters: "
        f"{describe_character(char)} at character {index}{more}"
    )


def escape_text(text: str, *, keep_newlines: bool = False) -> str:
    r"""``text`` fit to print on a terminal: each unsafe character written as an escape (``\x1b``,
    ``\u202e``). Other text, backslashes included, is left as it is: the aim is that nothing reaches
    the terminal that it would obey, not a reversible encoding.

    With ``keep_newlines`` a line feed stays a line feed (for multi-line messages); a carriage return
    never does, as it would let a line overwrite what came before it.
    """
    if text.isprintable():
        return text  # the common case: nothing to do
    out: list[str] = []
    for char in text:
        if (char == "\n" and keep_newlines) or not is_unsafe_character(char):
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)

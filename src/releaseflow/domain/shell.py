r"""Values in commands: how a ``${...}`` result is written into text that a shell (or a shell-like word
splitter) runs.

The rule (documented in docs/configuration.md, "Values in commands")
    In a command field (``template_fields.Command``: a JobRun's ``customCommand``/``customEntrypoint``/
    ``customProcess``, an Action's ``execute`` ``command`` and ``shell``), every ``${...}`` is data. Its
    text is written as exactly one shell word, quoted so that no character of it is special: a value
    ``$(touch x); rm -rf /`` is passed as that text, never run. Inside ``'...'`` or ``"..."`` of the
    command the quote is closed around the value and reopened, so ``echo "version ${args.V}"`` prints
    the value as it is. Drivers run these fields with ``sh -c`` or split them like ``shlex.split``; the
    quoting is right for both.

    Where a quoted value could still be re-read as code, the value is refused instead (an
    ``ExpressionError`` naming the field): inside ``$(...)``, backticks or ``${...}`` of the command,
    right after a backslash, inside a ``#`` comment, or after a here-document (``<<``).

    ``${fn.shellRaw(value)}`` is the explicit opt-out: its text goes into the command unquoted, for the
    shell to evaluate. ``${fn.shellQuote(value)}`` quotes explicitly (useful in other fields that
    end up in a shell, e.g. an environment variable a script ``eval``s); in a command field it is written
    as it is, not quoted twice. Only a ``${...}`` that is exactly one of these calls is exempt.

    A command that itself evaluates its arguments again (``eval``, ``sh -c``, ``ssh host``) evaluates
    the value too; that is the command's choice, spelled out in the template.
"""

from __future__ import annotations

import shlex

from releaseflow.domain.errors import ExpressionError

# ``${fn.<name>(...)}`` calls whose text goes into a command without (further) quoting.
SHELL_FUNCTIONS = frozenset({"shellRaw", "shellQuote"})

_TOP, _SINGLE, _DOUBLE = "top", "single", "double"
_SUBSTITUTION, _BACKTICK, _BRACE, _PAREN, _ANSI = "$(...)", "`...`", "${...}", "(...)", "$'...'"
# Characters after which an unquoted ``#`` starts a comment.
_WORD_BREAKS = frozenset(" \t\n;&|()<>")
_HINT = "write it outside (it is quoted for you), or use fn.shellRaw(...) to have the shell evaluate it"


def quote_word(text: str) -> str:
    """``text`` as one shell word whose characters are all literal (``shlex.quote``)."""
    return shlex.quote(text)


class ShellText:
    """Follows the quoting of a command as its text is written, to quote each value for its place."""

    def __init__(self) -> None:
        self._stack = [_TOP]
        self._escaped = False
        self._word_start = True
        self._comment = False
        self._heredoc = False

    def feed(self, text: str) -> None:
        """Advance over literal command text."""
        i = 0
        while i < len(text):
            i = self._step(text, i) + 1

    def _step(self, text: str, i: int) -> int:
        """Take the character at ``i`` (two for ``$(``, ``${``, ``<<``); return the last index taken."""
        char, top = text[i], self._stack[-1]
        start, self._word_start = self._word_start, False
        if self._comment:
            self._comment = char != "\n"
            self._word_start = char == "\n"
            return i
        if self._escaped:
            self._escaped = False
            return i
        if top == _SINGLE:
            if char == "'":
                self._stack.pop()
            return i
        if char == "\\":
            self._escaped = True
            return i
        if top == _ANSI:  # bash's $'...': backslash escapes, ends at an unescaped quote
            if char == "'":
                self._stack.pop()
            return i
        if top != _DOUBLE and text.startswith("$'", i):
            self._stack.append(_ANSI)
            return i + 1
        if text.startswith("$(", i):
            self._stack.append(_SUBSTITUTION)
            return i + 1
        if text.startswith("${", i):
            self._stack.append(_BRACE)
            return i + 1
        if char == "`":
            if top == _BACKTICK:
                self._stack.pop()
            else:
                self._stack.append(_BACKTICK)
            return i
        if top == _DOUBLE:
            if char == '"':
                self._stack.pop()
            return i
        if char == "'":
            self._stack.append(_SINGLE)
        elif char == '"':
            self._stack.append(_DOUBLE)
        elif char == "}" and top == _BRACE:
            self._stack.pop()
        elif char == "(" and top in (_SUBSTITUTION, _PAREN):
            self._stack.append(_PAREN)
        elif char == ")" and top in (_SUBSTITUTION, _PAREN):
            self._stack.pop()
        elif char == "#" and start:
            self._comment = True
        elif text.startswith("<<", i):
            self._heredoc = True
            return i + 1
        self._word_start = char in _WORD_BREAKS
        return i

    def refusal(self) -> str | None:
        """Why a value cannot be placed here, or None when it can."""
        nested = [part for part in self._stack[1:] if part not in (_SINGLE, _DOUBLE)]
        if nested:
            return f"a value cannot be placed inside {nested[0]} of a command: {_HINT}"
        if len(self._stack) > 2:
            return f"a value cannot be placed inside nested quotes of a command: {_HINT}"
        if self._escaped:
            return "a value cannot follow a backslash in a command (the backslash would undo its quoting)"
        if self._comment:
            return "a value cannot be placed in a comment of a command (a line break would end the comment)"
        if self._heredoc:
            return "a value cannot follow a here-document (<<) in a command: pass it as an argument"
        return None

    def splice(self, value: str) -> str:
        """The text that puts ``value`` here as literal data; raises ``ExpressionError`` if it cannot."""
        reason = self.refusal()
        if reason is not None:
            raise ExpressionError(reason)
        word = quote_word(value)
        # Inside quotes: close them, add the quoted word, reopen (the shell joins the three parts).
        text = {_TOP: word, _SINGLE: f"'{word}'", _DOUBLE: f'"{word}"'}[self._stack[-1]]
        self.feed(text)
        return text

"""What started a run: a person, an API token, a git push, a webhook or a rollback, and who or what.

Recorded with every run (``origin_kind`` and ``origin_by``), shown in lists, and used to decide what a
pinned stage refuses: automatic triggers, never a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OriginKind(StrEnum):
    # Someone started the run by hand (command line, web interface); ``by`` is who.
    PERSON = "person"
    # A request to the API with a token; ``by`` names the token.
    TOKEN = "token"
    # A git push trigger of the release flow; ``by`` is the branch or commit pushed.
    GIT = "git"
    # A webhook trigger; ``by`` names the hook or its caller.
    WEBHOOK = "webhook"
    # The rollback command; ``by`` is who asked for it.
    ROLLBACK = "rollback"


# Origins that act without a person deciding at that moment: a pinned stage refuses them.
AUTOMATIC_ORIGINS = frozenset({OriginKind.GIT, OriginKind.WEBHOOK})


@dataclass(frozen=True)
class RunOrigin:
    kind: OriginKind = OriginKind.PERSON
    by: str = ""

    @property
    def automatic(self) -> bool:
        return self.kind in AUTOMATIC_ORIGINS

    def label(self) -> str:
        """One phrase for lists and event causes: "person alice", "git push main", "webhook"."""
        word = "git push" if self.kind is OriginKind.GIT else str(self.kind)
        return f"{word} {self.by}" if self.by else word

    @classmethod
    def parse(cls, kind: str, by: str = "") -> RunOrigin:
        """An origin from its stored or typed words; an unknown kind names the known ones."""
        try:
            return cls(OriginKind(kind), by)
        except ValueError:
            known = ", ".join(str(member) for member in OriginKind)
            raise ValueError(f"unknown run origin '{kind}' (known: {known})") from None

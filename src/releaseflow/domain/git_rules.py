"""Git triggers as pure rules: does a push or a pull request start a run, and what does the run read?

A git trigger (compat 3.1) names a repository and when it fires: ``branchRestrictions`` (a push to a
matching branch), ``prRestrictions`` (a pull request opened or updated from a matching branch),
``pathIgnoreRules`` (gitignore syntax; with ``isAllowList`` an allow list), ``ciIgnoreFlags`` (words in
the head commit's message that skip it) and ``ignoreDrafts``. The run reads the event as
``${refs.<trigger>.branch|sha|repoUrl|pullRequestId}``.

Branch patterns are globs: ``*`` is any run of characters but ``/``, ``**`` any run at all, ``?`` one
character but ``/``. No I/O here: the events come from ``engine/triggers.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

from releaseflow.domain.errors import Issue
from releaseflow.domain.expressions import referenced_ref_fields

# What a run can read of a trigger: ``${refs.<trigger>.<field>}``.
TRIGGER_REF_FIELDS = ("branch", "sha", "repoUrl", "pullRequestId")
# Northflank's default skip flags (compat 3.1), used when a trigger names none.
DEFAULT_SKIP_FLAGS = (
    "[skip ci]",
    "[ci skip]",
    "[no ci]",
    "[skip nf]",
    "[nf skip]",
    "[northflank skip]",
    "[skip northflank]",
)
# A push whose new head is this sha deleted the branch.
DELETED_SHA = "0" * 40


class EventKind(StrEnum):
    # Commits were pushed to a branch (or the branch was deleted).
    PUSH = "push"
    # A pull request was opened, reopened, updated with commits, or closed.
    PULL_REQUEST = "pull_request"


@dataclass(frozen=True)
class GitEvent:
    """A push or a pull request, the same whichever service (or local poller) reported it."""

    kind: EventKind
    repo_url: str
    branch: str  # the pushed branch; for a pull request, its source (head) branch
    sha: str  # the new head commit
    head_message: str = ""  # the head commit's message (skip flags are looked for here)
    # Files the pushed commits changed; None when the service does not say (path rules then let it pass).
    paths: tuple[str, ...] | None = None
    pull_request_id: str | None = None
    draft: bool = False
    # Whether the pull request is open after this event (closing or merging one starts nothing).
    open: bool = True

    def describe(self) -> str:
        """One phrase for the trigger log: "push to main at 1a2b3c4" or "pull request 7 from feat"."""
        short = self.sha[:7]
        if self.kind is EventKind.PULL_REQUEST:
            return f"pull request {self.pull_request_id} from {self.branch} at {short} ({self.repo_url})"
        return f"push to {self.branch} at {short} ({self.repo_url})"


@dataclass(frozen=True)
class Match:
    """Whether a trigger starts a run for an event; ``reason`` says why either way."""

    starts: bool
    reason: str


def normalise_repo_url(url: str) -> str:
    """A repository's identity across its spellings: no scheme, user, ``.git`` or trailing slash,
    lower case host; ``git@host:owner/name`` equals ``https://host/owner/name``."""
    text = url.strip().rstrip("/")
    text = re.sub(r"\.git$", "", text)
    text = re.sub(r"^[a-z+]+://", "", text)
    text = re.sub(r"^[^@/]+@", "", text)
    if re.match(r"^[^/:]+:[^/]", text) and "://" not in url:
        text = text.replace(":", "/", 1)  # scp-like git@host:owner/name
    host, _, rest = text.partition("/")
    return f"{host.lower()}/{rest}" if rest else text.lower()


def same_repository(a: str, b: str) -> bool:
    return normalise_repo_url(a) == normalise_repo_url(b)


@lru_cache(maxsize=512)
def _glob(pattern: str) -> re.Pattern[str]:
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        out.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        index += 1
    return re.compile("".join(out))


def branch_matches(patterns: Iterable[str], branch: str) -> bool:
    return any(_glob(pattern).fullmatch(branch) for pattern in patterns)


def _path_rule_matches(rule: str, path: str) -> bool:
    """Whether one gitignore-style rule (without its ``!``) matches a file path: the file itself or a
    directory above it. A rule ending in ``/`` matches directories only; a rule with a ``/`` elsewhere
    is anchored at the repository's root, one without matches a name at any depth."""
    directory = rule.endswith("/")
    rule = rule.rstrip("/")
    pattern = _glob(rule.lstrip("/"))
    parts = path.split("/")
    # Anchored: the path's leading directories and itself; unanchored: each of its names.
    candidates = ["/".join(parts[: depth + 1]) for depth in range(len(parts))] if "/" in rule else parts
    return any(
        pattern.fullmatch(candidate) and (not directory or depth < len(parts) - 1)
        for depth, candidate in enumerate(candidates)
    )


def path_selected(rules: Sequence[str], path: str) -> bool:
    """Whether the rules select a path, gitignore style: the last matching rule wins, ``!`` negates."""
    selected = False
    for raw in rules:
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        if _path_rule_matches(rule[1:] if negated else rule, path):
            selected = not negated
    return selected


def _path_problem(trigger: Mapping[str, Any], paths: tuple[str, ...] | None) -> str | None:
    rules = list(trigger.get("pathIgnoreRules") or ())
    if not rules or paths is None:
        return None
    if not paths:
        return "the push changed no file"
    if trigger.get("isAllowList"):
        if not any(path_selected(rules, path) for path in paths):
            return f"no changed file is on the path allow list ({len(paths)} changed)"
        return None
    if all(path_selected(rules, path) for path in paths):
        return f"every changed file is ignored by the path rules ({len(paths)} changed)"
    return None


def _skip_flag(trigger: Mapping[str, Any], message: str) -> str | None:
    if trigger.get("ciIgnoreFlagsEnabled", True) is False:
        return None
    flags = trigger.get("ciIgnoreFlags") or DEFAULT_SKIP_FLAGS
    lowered = message.lower()
    return next((flag for flag in flags if flag and flag.lower() in lowered), None)


def watches(trigger: Mapping[str, Any], event: GitEvent) -> bool:
    """Whether the trigger is about the event's repository at all (others are not logged)."""
    return isinstance(trigger.get("repoUrl"), str) and same_repository(trigger["repoUrl"], event.repo_url)


def match_trigger(trigger: Mapping[str, Any], event: GitEvent) -> Match:
    """Whether a trigger on the event's repository starts a run for the event, and why (not)."""
    if trigger.get("manualOnly"):
        return Match(False, "the trigger is manual only")
    if event.kind is EventKind.PUSH:
        if event.sha == DELETED_SHA:
            return Match(False, f"branch {event.branch} was deleted")
        patterns = list(trigger.get("branchRestrictions") or ())
        if not branch_matches(patterns, event.branch):
            return Match(False, f"branch {event.branch} matches no branch rule ({_listed(patterns)})")
    else:
        if not event.open:
            return Match(False, f"pull request {event.pull_request_id} is closed")
        if event.draft and trigger.get("ignoreDrafts"):
            return Match(False, f"pull request {event.pull_request_id} is a draft (drafts are ignored)")
        patterns = list(trigger.get("prRestrictions") or ())
        if not branch_matches(patterns, event.branch):
            return Match(False, f"branch {event.branch} matches no pull request rule ({_listed(patterns)})")
    flag = _skip_flag(trigger, event.head_message)
    if flag is not None:
        return Match(False, f"the head commit's message says {flag}")
    problem = _path_problem(trigger, event.paths)
    if problem is not None:
        return Match(False, problem)
    return Match(True, f"{event.kind} matches trigger '{trigger.get('ref')}'")


def _listed(patterns: Sequence[str]) -> str:
    return ", ".join(patterns) if patterns else "none set"


def event_refs(trigger: Mapping[str, Any], event: GitEvent) -> dict[str, str]:
    """What ``${refs.<trigger>.*}`` reads in a run this event started."""
    refs = {"branch": event.branch, "sha": event.sha, "repoUrl": str(trigger.get("repoUrl", event.repo_url))}
    if event.pull_request_id is not None:
        refs["pullRequestId"] = event.pull_request_id
    return refs


def configured_refs(trigger: Mapping[str, Any]) -> dict[str, str]:
    """What a run not started by this trigger reads of it: its repository, and its branch when the
    trigger names exactly one branch without wildcards."""
    refs = {"repoUrl": str(trigger.get("repoUrl", ""))}
    branches = [str(b) for b in trigger.get("branchRestrictions") or () if not re.search(r"[*?\[]", str(b))]
    if len(branches) == 1 and len(trigger.get("branchRestrictions") or ()) == 1:
        refs["branch"] = branches[0]
    return refs


def run_trigger_refs(
    triggers: Sequence[Mapping[str, Any]], given: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, str]]:
    """The refs of every trigger for one run: the trigger's configuration, then what was given (the
    event that started the run, a webhook's ``<trigger>.<field>`` parameters, a run's overrides)."""
    refs: dict[str, dict[str, str]] = {}
    for trigger in triggers:
        ref = trigger.get("ref")
        if isinstance(ref, str):
            refs[ref] = {**configured_refs(trigger), **{k: str(v) for k, v in given.get(ref, {}).items()}}
    return refs


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook call's query parameters, sorted (compat 3.2)."""

    name: str | None = None
    description: str = ""
    refs: dict[str, dict[str, str]] = field(default_factory=dict)  # <trigger>.<field> overrides
    arguments: dict[str, str] = field(default_factory=dict)


def parse_webhook_parameters(
    parameters: Iterable[tuple[str, str]], trigger_refs: Iterable[str]
) -> tuple[WebhookRequest, list[Issue]]:
    """``name`` and ``description`` label the run, ``<trigger>.<field>`` overrides a trigger's value,
    anything else becomes an argument. A field a trigger does not have is an issue."""
    known = set(trigger_refs)
    name: str | None = None
    description = ""
    refs: dict[str, dict[str, str]] = {}
    arguments: dict[str, str] = {}
    issues: list[Issue] = []
    for key, value in parameters:
        ref, dot, field_name = key.partition(".")
        if key == "name":
            name = value or None
        elif key == "description":
            description = value
        elif dot and ref in known:
            if field_name not in TRIGGER_REF_FIELDS:
                fields = ", ".join(TRIGGER_REF_FIELDS)
                issues.append(Issue(key, f"trigger '{ref}' has no field '{field_name}' (fields: {fields})"))
            else:
                refs.setdefault(ref, {})[field_name] = value
        else:
            arguments[key] = value
    return WebhookRequest(name, description, refs, arguments), issues


def check_trigger_refs(
    spec: Any, triggers: Sequence[Mapping[str, Any]], node_refs: Iterable[str], path: str = "spec"
) -> list[Issue]:
    """Every ``${refs.<trigger>.<field>}`` reads a field a run can have (branch, sha, repoUrl,
    pullRequestId): any other is an error no run could resolve, named by its JSON path."""
    trigger_refs = {t["ref"] for t in triggers if isinstance(t.get("ref"), str)} - set(node_refs)
    fields = ", ".join(TRIGGER_REF_FIELDS)
    return [
        Issue(where, f"trigger '{ref}' has no field '{field_name}' (a run can read {fields})")
        for where, ref, field_name in referenced_ref_fields(spec, path)
        if ref in trigger_refs and field_name is not None and field_name not in TRIGGER_REF_FIELDS
    ]


def split_trigger_overrides(
    document: Mapping[str, Any], overrides: Mapping[str, Any], given: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A run request's ``overrides`` keyed by a trigger's ref set that trigger's values (``{"git":
    {"branch": "devel"}}``); the others patch nodes. Returns (node overrides, trigger values), the
    values ``given`` (by the event that started the run) merged over the overrides."""
    triggers = document.get("triggers")
    trigger_refs = {
        t["ref"] for t in triggers or () if isinstance(t, Mapping) and isinstance(t.get("ref"), str)
    }
    node_overrides = {key: value for key, value in overrides.items() if key not in trigger_refs}
    values: dict[str, dict[str, Any]] = {}
    for ref in trigger_refs:
        merged = {**(overrides.get(ref) or {}), **given.get(ref, {})}
        if merged:
            values[ref] = merged
    return node_overrides, values

"""The release flow format, written once: every node kind, its fields, and the top-level document.

This table follows Northflank's published release-flow schema (its API reference,
https://northflank.com/docs/v1/api/project/pipelines/) closely enough that Northflank's
documented example release flows are accepted as written. The parser (``template_parser``), the
resource checks (``template_rules``) and the JSON Schema (``schema``) all read it.

Deliberate differences from Northflank, each for a reason:

* ``timeoutDuration`` accepts 1..14400 seconds; Northflank's minimum is 30. Short timeouts keep tests
  and demos fast, and a too-short timeout fails visibly rather than silently.
* ``ref`` must be a slug (letters, digits, ``-``, ``_``) because refs are read back inside
  ``${refs.<ref>.<field>}``, where a dot or a space would be ambiguous.
* Resource ids are checked loosely (letters, digits, ``-``): existence in the stage is what matters,
  and ``template_rules`` checks that.
* Kinds and fields that releaseflow cannot execute (team-template features, BYOC clusters, VCS
  integrations, Slack integrations) are refused by name instead of being accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from releaseflow.domain.template import SUPPORTED_NODE_KINDS, UNSUPPORTED_NODE_KINDS
from releaseflow.domain.template_fields import (
    AnyJson,
    Arr,
    Bool,
    Command,
    Field,
    Int,
    Map,
    NodeRef,
    Num,
    Obj,
    Str,
    Tagged,
)

MAX_TIMEOUT_SECONDS = 14_400
MIN_TIMEOUT_SECONDS = 1  # Northflank: 30 (see module docstring)
MAX_ATTEMPTS_LIMIT = 100  # a guard against typos such as 1000; retries beyond this are never useful
MAX_TREE_DEPTH = 32  # levels of nested nodes (the root workflow is level 1)
MAX_NODE_COUNT = 2_000

REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
REF_HINT = "a slug of letters, digits, '-' and '_', starting with a letter or digit"
ID_PATTERN = r"^[A-Za-z0-9-]+$"
ID_HINT = "an id of letters, digits and '-'"
# A build service may be named with its project: ``project/build-service``.
BUILD_SERVICE_PATTERN = r"^([A-Za-z0-9-]+/)?[A-Za-z0-9-]+$"
SHA_PATTERN = r"^[0-9a-fA-F]{40}$"
VCS_SERVICES = ("bitbucket", "gitlab", "github", "self-hosted", "azure")
WORKFLOW_TYPES = ("sequential", "parallel")
CONCURRENCY_POLICIES = ("allow", "queue", "forbid", "latest", "replace")

# Resource tags of id fields, read by ``template_rules``.
SERVICE = "service"
JOB = "job"
ADDON = "addon"
BUILD_SERVICE = "build_service"
BUILD_OBJECT = "build_object"  # Build node id: a build service or a job, by the sibling ``type``
TARGET = "target"  # Release target: a service or job of this stage, by the sibling ``type``
PROMOTE_ORIGIN = "promote_origin"  # Release promote origin: a service or job of the previous stage


def _id(description: str = "", resource: str | None = None, pattern: str = ID_PATTERN) -> Str:
    return Str(description=description, pattern=pattern, hint=ID_HINT, max_length=100, resource=resource)


def _const(value: str) -> Str:
    return Str(enum=(value,), expr=False)


_TEXT = Str()
# Run by a shell or split into words: values spliced in are quoted (see ``shell``).
_COMMAND = Command(description="A command; ${...} values in it are quoted as shell words.")
_PROJECT_ID = _id("Project of the resource; releaseflow release flows act on their own project.")
_TIMEOUT = Int(
    description="Seconds to wait before the node fails (Northflank: 30..14400; releaseflow: 1..14400).",
    minimum=MIN_TIMEOUT_SECONDS,
    maximum=MAX_TIMEOUT_SECONDS,
)
_RESOURCE_TYPE = Str(enum=("service", "job"))

# ---------------------------------------------------------------------------------------------------
# Node specs, one per kind (compat 2.3-2.6)

_WORKFLOW = Obj(
    fields={
        "type": Str(enum=WORKFLOW_TYPES, expr=False, description="sequential or parallel"),
        "context": Obj(fields={"projectId": _PROJECT_ID}),
        "steps": Arr(items=NodeRef()),
    },
    required=("type", "steps"),
)

_TARGET = Obj(
    fields={"id": _id("Service or job of this stage.", TARGET), "type": _RESOURCE_TYPE},
    required=("id", "type"),
)
_RELEASE = Tagged(
    tag="type",
    variants={
        "build": Obj(
            fields={
                "type": _const("build"),
                # ``id`` may be omitted when ``build`` comes from a ref (a documented example does so).
                "origin": Obj(
                    fields={
                        "id": _id("Build service.", BUILD_SERVICE, BUILD_SERVICE_PATTERN),
                        "branch": _TEXT,
                        "build": Str(description="Build id, or 'latest'."),
                    }
                ),
                "target": _TARGET,
            },
            required=("type", "origin", "target"),
        ),
        "registry": Obj(
            fields={
                "type": _const("registry"),
                "origin": Obj(
                    fields={"imagePath": _TEXT, "credentials": _id("Saved registry credentials.")},
                    required=("imagePath",),
                ),
                "target": _TARGET,
            },
            required=("type", "origin", "target"),
        ),
        "deployment": Obj(
            fields={
                "type": _const("deployment"),
                "origin": Obj(
                    fields={
                        "id": _id("Service or job of the previous stage.", PROMOTE_ORIGIN),
                        "type": _RESOURCE_TYPE,
                    },
                    required=("id", "type"),
                ),
                "target": _TARGET,
            },
            required=("type", "origin", "target"),
        ),
    },
)

_BUILD = Obj(
    fields={
        "id": _id("Build service (type service) or job (type job) to build.", BUILD_OBJECT),
        "type": Str(enum=("service", "job"), expr=False),
        "projectId": _PROJECT_ID,
        "branch": _TEXT,
        "pullRequestId": Int(minimum=0),
        "sha": Str(pattern=SHA_PATTERN, hint="a 40-character commit sha"),
        "reuseExistingBuilds": Bool(),
        "buildRuleFallThroughHandling": Str(enum=("fail", "skip", "useLastBuild")),
        "buildRules": Obj(
            fields={
                "pathIgnoreRules": Arr(items=Str(max_length=260)),
                "isAllowList": Bool(),
                "ciIgnoreFlagsEnabled": Bool(),
                "ciIgnoreFlags": Arr(items=Str(max_length=72)),
            }
        ),
        "buildOverrides": Obj(
            fields={
                "buildArguments": Map(values=AnyJson(), expr=True),
                "buildFiles": Map(),
                "dockerSecretMounts": Map(),
                "docker": Obj(
                    fields={"dockerFilePath": _TEXT, "dockerWorkDir": _TEXT, "dockerfileTarget": _TEXT}
                ),
            }
        ),
    },
    required=("id", "type"),
    exclusive=(("branch", "pullRequestId"),),
)

_DOCKER_RUN = Obj(
    fields={
        "configType": Str(
            enum=("default", "customEntrypoint", "customCommand", "customEntrypointCustomCommand")
        ),
        "customEntrypoint": _COMMAND,
        "customCommand": _COMMAND,
    },
    required=("configType",),
)
_BUILDPACK_RUN = Obj(
    fields={
        "configType": Str(
            enum=(
                "default",
                "customProcess",
                "customCommand",
                "customEntrypointCustomCommand",
                "originalEntrypointCustomCommand",
            )
        ),
        "customProcess": _COMMAND,
        "customEntrypoint": _COMMAND,
        "customCommand": _COMMAND,
    },
    required=("configType",),
)
_JOB_RUN = Obj(
    fields={
        "jobId": _id("Job of this stage.", JOB),
        "projectId": _PROJECT_ID,
        "runtimeEnvironment": Map(expr=True),
        "runtimeFiles": Map(),
        "dockerSecretMounts": Map(),
        "billing": Obj(fields={"deploymentPlan": _TEXT}),
        "deployment": Obj(
            fields={
                "internal": Obj(
                    fields={
                        "id": _id("Build service.", BUILD_SERVICE, BUILD_SERVICE_PATTERN),
                        "branch": _TEXT,
                        "buildSHA": Str(description="A 40-character commit sha, or 'latest'."),
                        "buildId": _TEXT,
                    }
                ),
                "external": Obj(fields={"imagePath": _TEXT, "credentials": _id()}),
                "docker": _DOCKER_RUN,
                "buildpack": _BUILDPACK_RUN,
                "storage": Obj(
                    fields={
                        "useHdbStorage": Bool(),
                        "usePdSsdStorage": Bool(),
                        "ephemeralStorage": Obj(fields={"storageSize": Int(minimum=0)}),
                        "shmSize": Int(minimum=0),
                    }
                ),
            },
            exclusive=(("internal", "external"),),
        ),
    },
    required=("jobId",),
)

_ADDON_BACKUP = Obj(
    fields={
        "addonId": _id("Addon of this stage.", ADDON),
        "projectId": _PROJECT_ID,
        "backupType": Str(enum=("dump", "snapshot")),
        "compressionType": Str(enum=("zstd", "gz", "none")),
        "customDestinationId": _id(),
        "additionalDestinations": Arr(
            items=Obj(
                fields={
                    "destinationId": _id(),
                    "retentionTime": Int(minimum=1, description="Days."),
                    "type": Str(enum=("custom",)),
                },
                required=("type",),
            )
        ),
    },
    required=("addonId",),
)


def _inner(action_type: str, data: Obj, condition: str | None = None) -> Obj:
    """``{type, data, condition?}``: the inner spec of an Action or Condition node."""
    fields: dict[str, Field] = {"type": _const(action_type), "data": data}
    if condition is not None:
        fields["condition"] = Str(enum=(condition,), expr=False)
    return Obj(fields=fields, required=("type", "data"))


def _kinded(kind: str, spec: Field) -> Obj:
    """``{kind, spec}``: the spec of an Action, Condition or Message node for one ``kind``."""
    return Obj(fields={"kind": _const(kind), "spec": spec}, required=("kind", "spec"))


def _data(fields: Mapping[str, Field], required: tuple[str, ...]) -> Obj:
    return Obj(fields={"projectId": _PROJECT_ID, **fields}, required=required)


_EXECUTE: dict[str, Field] = {"command": _COMMAND, "shell": _COMMAND, "user": _TEXT, "group": _TEXT}
_SERVICE_ID = _id("Service of this stage.", SERVICE)
_JOB_ID = _id("Job of this stage.", JOB)
_ADDON_ID = _id("Addon of this stage.", ADDON)

_ACTION = Tagged(
    tag="kind",
    variants={
        "Service": _kinded(
            "Service",
            Tagged(
                tag="type",
                variants={
                    "restart": _inner(
                        "restart",
                        _data({"serviceId": _SERVICE_ID, "timeoutDuration": _TIMEOUT}, ("serviceId",)),
                        condition="running",
                    ),
                    "execute": _inner(
                        "execute",
                        _data(
                            {
                                "serviceId": _SERVICE_ID,
                                # Do not await the command's output: succeed once it is sent.
                                "options": Obj(fields={"dispatchOnly": Bool()}),
                                **_EXECUTE,
                            },
                            ("serviceId", "command"),
                        ),
                    ),
                },
            ),
        ),
        "Job": _kinded("Job", _inner("execute", _data({"jobId": _JOB_ID, **_EXECUTE}, ("jobId", "command")))),
        "Addon": _kinded(
            "Addon",
            _inner(
                "restart",
                _data({"addonId": _ADDON_ID, "timeoutDuration": _TIMEOUT}, ("addonId",)),
                condition="running",
            ),
        ),
        "AddonBackup": _kinded(
            "AddonBackup",
            _inner(
                "restore",
                _data(
                    {"addonId": _ADDON_ID, "backupId": _id(), "timeoutDuration": _TIMEOUT},
                    ("addonId", "backupId"),
                ),
                condition="success",
            ),
        ),
    },
    unsupported={"VCS": "action kind 'VCS' is not supported by releaseflow"},
)

_CONDITION = Tagged(
    tag="kind",
    variants={
        "Service": _kinded(
            "Service",
            _inner("running", _data({"serviceId": _SERVICE_ID, "timeoutDuration": _TIMEOUT}, ("serviceId",))),
        ),
        "Addon": _kinded(
            "Addon",
            _inner("running", _data({"addonId": _ADDON_ID, "timeoutDuration": _TIMEOUT}, ("addonId",))),
        ),
        "Build": _kinded(
            "Build", _inner("success", _data({"buildId": _id(), "timeoutDuration": _TIMEOUT}, ("buildId",)))
        ),
        "JobRun": _kinded(
            "JobRun",
            _inner(
                "success",
                _data({"jobId": _JOB_ID, "runId": _TEXT, "timeoutDuration": _TIMEOUT}, ("jobId", "runId")),
            ),
        ),
        "AddonBackup": _kinded(
            "AddonBackup",
            _inner(
                "success",
                _data(
                    {"addonId": _ADDON_ID, "backupId": _id(), "timeoutDuration": _TIMEOUT},
                    ("addonId", "backupId"),
                ),
            ),
        ),
    },
    unsupported={
        "BYOCCluster": "condition kind 'BYOCCluster' is not supported by releaseflow",
        "VCS": "condition kind 'VCS' is not supported by releaseflow",
        "AddonImport": "condition kind 'AddonImport' is not supported by releaseflow",
    },
)

_MESSAGE_TEXT = Str(description="Message text (markdown for Slack); may use ${args..}, ${refs..}, ${fn..}.")
_MESSAGE = Tagged(
    tag="kind",
    variants={
        "SLACK": _kinded(
            "SLACK",
            Obj(
                fields={"webhookUrl": _TEXT, "message": _MESSAGE_TEXT},
                required=("webhookUrl", "message"),
                unsupported={
                    "integrationInternalId": "Slack integrations are not supported by releaseflow;"
                    " use webhookUrl",
                },
            ),
        ),
        "RAW_WEBHOOK": _kinded(
            "RAW_WEBHOOK",
            Obj(fields={"webhookUrl": _TEXT, "message": _MESSAGE_TEXT}, required=("webhookUrl", "message")),
        ),
    },
    unsupported={"VCS": "message kind 'VCS' (pull request comments) is not supported by releaseflow"},
)

_APPROVAL = Obj(
    fields={
        "amount": Int(minimum=1, description="Approvals required."),
        # releaseflow's own: who may decide (empty or absent: anyone but the run's starter).
        "approvers": Arr(items=Str(max_length=100), description="Who may approve or reject (releaseflow)."),
    },
    required=("amount",),
)


@dataclass(frozen=True)
class NodeKind:
    """One node kind: the shape of its ``spec`` and which node-level fields it takes."""

    name: str
    spec: Field
    conditions: tuple[str, ...] = ()  # allowed values of the node-level ``condition``
    timeout: bool = True  # takes a node-level ``timeoutDuration``
    description: str = ""

    def node_fields(self) -> Obj:
        fields: dict[str, Field] = {
            "kind": _const(self.name),
            "ref": Str(
                pattern=REF_PATTERN,
                hint=REF_HINT,
                max_length=64,
                expr=False,
                description="Name of this node inside ${refs.<ref>...}; unique in the template.",
            ),
            "spec": self.spec,
            "skipNodeExecution": Bool(string_bool=True, description="Skip this node when true."),
            "settings": SETTINGS,
        }
        if self.conditions:
            fields["condition"] = Str(
                enum=self.conditions,
                expr=False,
                description="Wait for completion: the node succeeds only once this state is reached.",
            )
        if self.timeout:
            fields["timeoutDuration"] = _TIMEOUT
        return Obj(fields=fields, required=("kind", "spec"), description=self.description)


SETTINGS = Obj(
    fields={
        "maxAttempts": Int(minimum=1, maximum=MAX_ATTEMPTS_LIMIT),
        "backoff": Obj(
            fields={
                "type": Str(enum=("fixed",), expr=False),
                "delay": Num(minimum=0, description="Seconds between attempts."),
            }
        ),
    },
    description="Retry settings: attempts in all, and the delay between them.",
)

NODE_KINDS: Mapping[str, NodeKind] = {
    kind.name: kind
    for kind in (
        NodeKind(
            "Workflow", _WORKFLOW, timeout=False, description="Steps run one after another, or all at once."
        ),
        NodeKind("Release", _RELEASE, ("running",), description="Deploy a build or an image, or promote."),
        NodeKind("Build", _BUILD, ("success",), description="Start a build."),
        NodeKind("JobRun", _JOB_RUN, ("success",), description="Run a job."),
        NodeKind("AddonBackup", _ADDON_BACKUP, ("success",), description="Back up an addon."),
        NodeKind(
            "Action", _ACTION, description="Restart or execute a command in a resource; restore a backup."
        ),
        NodeKind(
            "Condition", _CONDITION, description="Wait until a resource is running or an action succeeded."
        ),
        NodeKind("Message", _MESSAGE, description="Send a message to Slack or a webhook."),
        NodeKind("Approval", _APPROVAL, description="Wait for manual approvals."),
    )
}
assert tuple(NODE_KINDS) == SUPPORTED_NODE_KINDS, "template_format and template.SUPPORTED_NODE_KINDS differ"
UNSUPPORTED_KINDS = frozenset(UNSUPPORTED_NODE_KINDS)

# ---------------------------------------------------------------------------------------------------
# Top level (compat 2.2, 2.9, 3.1)

_LITERAL = Str(expr=False)
_LITERAL_LIST = Arr(items=_LITERAL)

TRIGGER = Obj(
    fields={
        "ref": Str(pattern=REF_PATTERN, hint=REF_HINT, max_length=64, expr=False),
        "type": Str(enum=("git",), expr=False),
        "vcsService": Str(enum=VCS_SERVICES, expr=False),
        "selfHostedVcsId": _LITERAL,
        "accountLogin": _LITERAL,
        "vcsLinkId": _LITERAL,
        "repoUrl": _LITERAL,
        "branchRestrictions": _LITERAL_LIST,
        "prRestrictions": _LITERAL_LIST,
        "pathIgnoreRules": Arr(items=Str(max_length=260, expr=False)),
        "isAllowList": Bool(expr=False),
        "ciIgnoreFlags": Arr(items=Str(max_length=72, expr=False)),
        "ciIgnoreFlagsEnabled": Bool(expr=False),
        "ignoreDrafts": Bool(expr=False),
        "manualOnly": Bool(expr=False),
    },
    required=("vcsService", "repoUrl"),
)

GITOPS = Obj(
    fields={
        "vcsService": Str(enum=VCS_SERVICES, expr=False),
        "selfHostedVcsId": _LITERAL,
        "accountLogin": _LITERAL,
        "vcsLinkId": _LITERAL,
        "repoUrl": _LITERAL,
        "branch": _LITERAL,
        "filePath": Str(pattern=r"^/", hint="a path starting with '/'", expr=False),
    },
    required=("vcsService", "repoUrl", "branch", "filePath"),
)


def _rich_input(kind: str, outputs: tuple[str, ...]) -> Obj:
    return Obj(
        fields={
            "kind": _const(kind),
            "spec": Obj(
                fields={
                    "title": _LITERAL,
                    "description": _LITERAL,
                    "required": Bool(expr=False),
                    "inputs": Obj(
                        fields={"source": Str(expr=False, resource=BUILD_SERVICE)}, required=("source",)
                    ),
                    "outputs": Obj(fields={name: _LITERAL for name in outputs}),
                },
                required=("title", "inputs"),
            ),
        },
        required=("kind", "spec"),
    )


RICH_INPUT = Tagged(
    tag="kind",
    variants={
        "BranchCommitSelector": _rich_input("BranchCommitSelector", ("branch", "buildSha")),
        "BuildSelector": _rich_input("BuildSelector", ("branch", "buildSha", "buildId")),
    },
)

OPTIONS = Obj(
    fields={
        "concurrencyPolicy": Str(enum=CONCURRENCY_POLICIES, expr=False),
        "paused": Bool(expr=False),
    }
)

NORTHFLANK_SCHEMA_URL = "https://api.northflank.com/v1/schemas/release-flow"
RELEASEFLOW_SCHEMA_URL = "https://releaseflow.dev/schemas/release-flow"

# The root ``spec`` is validated by the parser as a node (it must be a Workflow); ``NodeRef`` stands
# in for it here so that this table describes every top-level key.
DOCUMENT = Obj(
    fields={
        "apiVersion": Str(enum=("v1.2",), expr=False),
        "spec": NodeRef(),
        "$schema": Str(
            expr=False, description=f"Accepted: {NORTHFLANK_SCHEMA_URL} or {RELEASEFLOW_SCHEMA_URL}."
        ),
        "arguments": Map(description="Default arguments, read as ${args.<key>}."),
        # releaseflow's own: arguments whose values are stored encrypted and shown masked.
        "secretArguments": Arr(
            items=Str(max_length=100),
            expr=False,
            description="Keys of arguments that are secret (releaseflow).",
        ),
        "triggers": Arr(items=TRIGGER),
        "options": OPTIONS,
        "richInputs": Arr(items=RICH_INPUT),
        "gitops": GITOPS,
        # Kept and returned, not executed: teardown belongs to preview environments.
        "teardownSpec": Obj(
            fields={"spec": Map(), "failurePolicy": Str(enum=("ignore", "block"), expr=False)},
            nullable=True,
        ),
        # Present in Northflank's update body, purpose undocumented: kept as written.
        "project": Map(),
    },
    required=("apiVersion", "spec"),
)

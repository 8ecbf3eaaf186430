"""Values in commands: ``${...}`` in a command field is data, written as a quoted shell word.

The resolved commands are run with a real ``sh -c`` (as the local driver runs them) and split with
``shlex.split`` (as the docker driver and non-shell execute actions do): the value must arrive as it
was, and nothing in it may run.
"""

from __future__ import annotations

import shlex
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releaseflow.domain.errors import ExpressionError, ValidationError
from releaseflow.domain.expressions import Scope, check_syntax, parse_string, resolve, resolve_partially
from releaseflow.domain.template_parser import parse_template

NOW = datetime(2025, 5, 14, 22, 0, tzinfo=UTC)
NODE_PATH = "spec.spec.steps[0]"
COMMAND_PATH = f"{NODE_PATH}.spec.deployment.docker.customCommand"

HOSTILE = [
    "$(touch {marker})",
    "`touch {marker}`",
    "; touch {marker}",
    "x' ; touch {marker} ; echo '",
    'x" ; touch {marker} ; echo "',
    "a\ntouch {marker}",
    "$HOME ${{HOME}} \\ * ? ~ # & | < > ( ) {{ }} !",
    "",
    "plain",
    "with space",
]
# Where a template writes the value: unquoted, glued to text, in double quotes, in single quotes.
FORMS = {
    "word": "printf '%s\\n' ${args.V}",
    "glued": "printf '%s\\n' pre${args.V}post",
    "double quotes": "printf '%s\\n' \"pre ${args.V} post\"",
    "single quotes": "printf '%s\\n' 'pre ${args.V} post'",
    "two values": "printf '%s\\n' ${args.V} ${args.V}",
}
EXPECTED = {
    "word": lambda v: [v],
    "glued": lambda v: [f"pre{v}post"],
    "double quotes": lambda v: [f"pre {v} post"],
    "single quotes": lambda v: [f"pre {v} post"],
    "two values": lambda v: [v, v],
}


def job_run(command: str) -> dict[str, Any]:
    docker = {"configType": "customCommand", "customCommand": command}
    return {"kind": "JobRun", "ref": "job", "spec": {"jobId": "migrate", "deployment": {"docker": docker}}}


def execute(command: str, shell: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"jobId": "migrate", "command": command}
    if shell is not None:
        data["shell"] = shell
    return {
        "kind": "Action",
        "ref": "run",
        "spec": {"kind": "Job", "spec": {"type": "execute", "data": data}},
    }


def command_of(node: dict[str, Any], value: Any) -> str:
    resolved = resolve(node, Scope(args={"V": value}, now=NOW), NODE_PATH)
    spec = resolved["spec"]
    if node["kind"] == "JobRun":
        return str(spec["deployment"]["docker"]["customCommand"])
    return str(spec["spec"]["data"]["command"])


def run_sh(command: str, cwd: Path) -> list[str]:
    result = subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")[:-1]


@pytest.mark.parametrize("form", FORMS, ids=FORMS.keys())
@pytest.mark.parametrize("hostile", HOSTILE)
def test_command_field__values_reach_the_command_as_data(form: str, hostile: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    value = hostile.format(marker=marker)
    command = command_of(job_run(FORMS[form]), value)

    printed = run_sh(command, tmp_path)
    split = shlex.split(command)

    assert not marker.exists(), f"{command!r} ran part of the value"
    assert printed == [line for word in EXPECTED[form](value) for line in word.split("\n")]
    assert split[2:] == EXPECTED[form](value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30))
def test_command_field__any_text_arrives_intact(value: str, tmp_path: Path) -> None:
    command = command_of(job_run('printf "%s" "<${args.V}>" ${args.V}'), value)
    result = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, timeout=10)
    assert result.stdout.decode("utf-8", "surrogateescape") == f"<{value}>{value}"
    assert shlex.split(command)[2:] == [f"<{value}>", value]


def test_command_field__ordinary_values_stay_readable() -> None:
    assert (
        command_of(job_run("deploy --version ${args.V} --to=prod"), "1.2.3")
        == "deploy --version 1.2.3 --to=prod"
    )
    assert command_of(job_run("migrate ${args.V}"), 42) == "migrate 42"


def test_command_field__a_whole_string_value_is_one_word() -> None:
    assert command_of(job_run("${args.V}"), "rm -rf /") == "'rm -rf /'"


def test_command_field__shell_raw_is_evaluated_on_purpose(tmp_path: Path) -> None:
    command = command_of(job_run("${fn.shellRaw(args.V)}"), "echo $((6 * 7))")
    assert command == "echo $((6 * 7))"
    assert run_sh(command, tmp_path) == ["42"]


def test_command_field__shell_quote_is_not_quoted_twice() -> None:
    assert command_of(job_run("echo ${fn.shellQuote(args.V)}"), "a b") == "echo 'a b'"


def test_command_field__execute_actions_quote_too(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for node in (execute("echo ${args.V}"), execute("echo ${args.V}", shell="sh")):
        command = command_of(node, f"$(touch {marker})")
        assert run_sh(command, tmp_path) == [f"$(touch {marker})"]
    assert not marker.exists()


def test_command_field__the_shell_of_an_execute_action_is_one_word() -> None:
    resolved = resolve(execute("true", shell="${args.V}"), Scope(args={"V": "sh -c 'touch x'"}, now=NOW), "n")
    assert resolved["spec"]["spec"]["data"]["shell"] == "'sh -c '\"'\"'touch x'\"'\"''"


def test_other_fields__values_are_written_as_they_are() -> None:
    node = {
        "kind": "Message",
        "ref": "note",
        "spec": {
            "kind": "Webhook",
            "spec": {"type": "post", "url": "http://x/${args.V}", "message": "${args.V}"},
        },
    }
    resolved = resolve(node, Scope(args={"V": "a b$(c)"}, now=NOW), NODE_PATH)
    assert resolved["spec"]["spec"]["message"] == "a b$(c)"


REFUSED = {
    "command substitution": ("echo $(cat ${args.V})", "inside $(...)"),
    "backticks": ("echo `cat ${args.V}`", "inside `...`"),
    "parameter expansion": ("echo $${X:-${args.V}}", "inside ${...}"),
    "substitution in double quotes": ('echo "$(echo ${args.V})"', "inside $(...)"),
    "after a backslash": ("echo \\${args.V}", "cannot follow a backslash"),
    "comment": ("true # ${args.V}", "in a comment"),
    "here-document": ("cat <<EOF\n${args.V}\nEOF", "here-document"),
}


@pytest.mark.parametrize(("command", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_command_field__values_where_quoting_cannot_hold_are_refused(command: str, reason: str) -> None:
    node = job_run(command)

    (issue,) = check_syntax(node, NODE_PATH)
    _, partial = resolve_partially(node, Scope(args={"V": "x"}, now=NOW), NODE_PATH)
    with pytest.raises(ExpressionError) as caught:
        resolve(node, Scope(args={"V": "x"}, now=NOW), NODE_PATH)

    assert issue.path == COMMAND_PATH and reason in issue.message
    assert [item.path for item in partial] == [COMMAND_PATH]
    assert str(caught.value).startswith(f"{COMMAND_PATH}: ") and reason in str(caught.value)


def test_command_field__raw_values_may_go_anywhere() -> None:
    assert check_syntax(job_run("echo $(cat ${fn.shellRaw(args.V)})"), NODE_PATH) == []
    assert command_of(job_run("echo $(cat ${fn.shellRaw(args.V)})"), "f") == "echo $(cat f)"


def test_parse_template__refuses_an_unquotable_value_in_a_nested_step() -> None:
    document = {
        "apiVersion": "v1.2",
        "arguments": {"V": "x"},
        "spec": {
            "kind": "Workflow",
            "spec": {
                "type": "sequential",
                "steps": [
                    {
                        "kind": "Workflow",
                        "spec": {"type": "parallel", "steps": [job_run("echo $(${args.V})")]},
                    }
                ],
            },
        },
    }
    with pytest.raises(ValidationError) as caught:
        parse_template(document)
    (issue,) = caught.value.issues
    assert issue.path == "spec.spec.steps[0].spec.steps[0].spec.deployment.docker.customCommand"
    assert "inside $(...)" in issue.message


# A small grammar of command templates: literal words, quoted groups (with values inside), escaped
# characters, comments without values and command substitutions without values.
_LITERAL = st.sampled_from(["a", "b-c", "x=1", "\\$", "\\'", '\\"', "\\\\", "$$HOME", "''", '""'])
_VALUE = st.just("${args.V}")
_DOUBLE = st.lists(_LITERAL | _VALUE | st.sampled_from([" ", "'", "$(echo in)"]), max_size=4).map(
    lambda parts: '"' + "".join(parts).replace('\\"', "") + '"'
)
_SINGLE = st.lists(st.sampled_from(["a", " ", '"', "$(x)", "\\"]) | _VALUE, max_size=4).map(
    lambda parts: "'" + "".join(parts) + "'"
)
_WORD = st.lists(_LITERAL | _VALUE | _DOUBLE | _SINGLE | st.just("$(echo sub)"), min_size=1, max_size=3).map(
    "".join
)
_TEMPLATE = st.lists(_WORD, min_size=1, max_size=5).map(lambda words: "printf '[%s]' " + " ".join(words))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=_TEMPLATE, hostile=st.sampled_from(HOSTILE))
def test_command_field__no_template_of_the_grammar_lets_a_value_run(
    template: str, hostile: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    value = hostile.format(marker=marker)
    try:
        command = command_of(job_run(template), value)
    except ExpressionError:
        return  # refused: nothing runs
    result = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=10)
    assert not marker.exists(), f"{template!r} with {value!r} became {command!r}"
    written = any(not isinstance(part, str) for part in parse_string(template))
    if written and result.returncode == 0:  # a value was written in, and the command ran
        assert value.replace("\n", "") in result.stdout.replace("\n", "")

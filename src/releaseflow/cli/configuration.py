"""Configuration as code: apply, validate, schema."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from releaseflow.cli.backend import open_backend
from releaseflow.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, run_async
from releaseflow.cli.render import error_lines, untrusted
from releaseflow.domain.errors import ReleaseflowError, ValidationError

if TYPE_CHECKING:
    from releaseflow.domain.config import Configuration
    from releaseflow.settings import Settings


def register(commands: Subparsers) -> None:
    apply = commands.add_parser("apply", help="make the server match a configuration file (prints the plan)")
    apply.add_argument("-f", "--file", required=True, type=Path, help="YAML or JSON configuration file")
    apply.add_argument(
        "--prune", action="store_true", help="also delete what the file's projects no longer list"
    )
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    # Through a server, the file and its release flow files are read here and sent as one document.
    apply.set_defaults(handler=apply_file, remote=True)

    validate = commands.add_parser("validate", help="check a configuration file or a release flow template")
    validate.add_argument("-f", "--file", required=True, type=Path, help="YAML or JSON file")
    # Checking a file reads no data, local or remote: it works the same with a server set.
    validate.set_defaults(handler=validate_file, remote=True)

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of release flow templates, or of a driver's resource spec"
    )
    choice = schema.add_mutually_exclusive_group()
    choice.add_argument(
        "--resource",
        metavar="DRIVER/KIND",
        help="the schema of a resource's spec on a driver, e.g. local/service (see --list)",
    )
    choice.add_argument("--list", action="store_true", help="list the resource spec schemas by name")
    # The schema is part of this program: printing it needs no data either.
    schema.set_defaults(handler=print_schema, remote=True)


def apply_file(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 1 with every problem on stderr when the file is invalid (as ``validate`` does): the file is
    read and checked here, whether it is applied locally or through a server."""
    from releaseflow.engine.configuration import load_configuration_file

    try:
        config = load_configuration_file(args.file)
    except ReleaseflowError as error:
        return _file_refused(error)

    async def go() -> int:
        async with open_backend(args.target, settings, create=True) as backend:
            plan = await backend.apply_configuration(config, prune=args.prune, dry_run=args.dry_run)
        if not plan.has_changes:
            print(f"nothing to change ({plan.unchanged} unchanged)")
            return EXIT_OK
        print(untrusted(plan.render(), multiline=True))
        if args.dry_run:
            print("dry run: nothing was changed")
        return EXIT_OK

    return run_async(go())


def validate_file(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 1 with every problem listed (each with its path) when the file is invalid."""
    try:
        print(untrusted(_validate(args.file)))
    except ReleaseflowError as error:
        return _file_refused(error)
    return EXIT_OK


def _file_refused(error: ReleaseflowError) -> int:
    """A file that cannot be read or is invalid: the same exit code and stream for every command."""
    print("\n".join(error_lines(str(error))), file=sys.stderr)
    return EXIT_FAILED


def _validate(path: Path) -> str:
    from releaseflow.domain.documents import load_document, read_document_bytes
    from releaseflow.domain.template_parser import parse_template
    from releaseflow.engine.configuration import load_configuration_file

    try:
        document = load_document(read_document_bytes(path), source=str(path))
    except OSError as error:
        raise ReleaseflowError(f"cannot read {path}: {error.strerror}") from error
    if isinstance(document, Mapping) and "projects" in document:
        return f"{path}: valid configuration ({_describe(load_configuration_file(path))})"
    try:
        template = parse_template(document)
    except ValidationError as error:
        raise ValidationError(error.issues, subject=f"release flow template {path}") from None
    nodes = sum(1 for node in template.nodes() if not node.is_workflow)
    return f"{path}: valid release flow template ({nodes} node{'s' if nodes != 1 else ''})"


def _describe(config: Configuration) -> str:
    pipelines = [pipeline for project in config.projects for pipeline in project.pipelines]
    flows = [stage for pipeline in pipelines for stage in pipeline.stages if stage.release_flow is not None]
    resources = sum(len(project.resources) for project in config.projects)
    return (
        f"{len(config.projects)} project(s), {resources} resource(s), {len(pipelines)} pipeline(s),"
        f" {len(flows)} release flow(s)"
    )


def print_schema(args: argparse.Namespace, settings: Settings) -> int:
    from releaseflow.domain.schema import release_flow_json_schema
    from releaseflow.domain.spec_schema import spec_json_schema
    from releaseflow.engine.configuration import resource_schemas

    schemas = {schema.name: schema for kinds in resource_schemas().values() for schema in kinds.values()}
    if args.list:
        width = max(len(name) for name in schemas)
        for name, schema in sorted(schemas.items()):
            print(f"{name:<{width}}  {schema.description}")
        return EXIT_OK
    if args.resource is None:
        print(json.dumps(release_flow_json_schema(), indent=2))
        return EXIT_OK
    if args.resource not in schemas:
        known = ", ".join(sorted(schemas))
        raise ReleaseflowError(f"no resource schema '{args.resource}' (known: {known})")
    print(json.dumps(spec_json_schema(schemas[args.resource]), indent=2))
    return EXIT_OK

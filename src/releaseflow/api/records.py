"""Records of what runs made on platforms (``/api/projects/{projectId}/records``): builds, job runs,
deploys and backups, listed with filters, one by id, and its log: its tail as plain text, or its lines
numbered from the start (past a position: what following the log reads). Each calls one engine
query (``engine/platform_records.py``); a record of another project is not found, like an unknown one.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from releaseflow.api.answers import Answer, Pagination
from releaseflow.api.errors import ApiError
from releaseflow.api.limits import LARGEST_INTEGER
from releaseflow.api.northflank import APP, PAGING, VIEWER
from releaseflow.api.pagination import Page, PageRequest, fetch_page
from releaseflow.api.routing import router_of
from releaseflow.api.runs import run_in_project
from releaseflow.application import Application
from releaseflow.engine import platform_records
from releaseflow.engine.platform_records import PlatformRecord, RecordFilter, RecordKind
from releaseflow.engine.tokens import Principal
from releaseflow.platform.driver import MOST_LOG_LINES
from releaseflow.wire.projects import LogLinesShape, RecordShape

PROJECT = "/api/projects/{projectId}"
RECORDS = PROJECT + "/records"
RECORD = RECORDS + "/{recordId}"
# Numbered lines past a position: as many as a tail, 1000 unless asked (a follower asks again at once
# when it got as many as it asked for).
NUMBERED_LINES_DEFAULT = 1000
KINDS = Query([], description="only these kinds (repeatable): build, job-run, deploy, backup")


class RecordList(BaseModel):
    records: list[RecordShape]


class RecordPage(Answer[RecordList]):
    pagination: Pagination


async def record_of_path(projectId: str, recordId: str, app: Application = APP) -> PlatformRecord:
    return await platform_records.record_in_project(app.db, projectId, recordId)


# Declared after the role in each route, so that a request without access is refused first.
RECORD_OF_PATH = Depends(record_of_path)


def record_routes() -> APIRouter:
    router = router_of(
        "records",
        [
            ("GET", RECORDS, list_records, "List the project's builds, job runs, deploys and backups"),
            ("GET", RECORD, get_record, "Get a build, job run, deploy or backup record"),
            ("GET", RECORD + "/log/lines", record_log_lines, "The log's lines numbered from its start"),
        ],
        response_model_exclude_unset=True,
    )
    router.add_api_route(
        RECORD + "/log",
        record_log,
        methods=["GET"],
        summary="The log of a build, job run or deploy (the service's output), as plain text",
        response_class=PlainTextResponse,
    )
    return router


async def list_records(
    projectId: str,
    paging: PageRequest = PAGING,
    kind: list[str] = KINDS,
    pipeline: str | None = Query(None, description="only runs of this pipeline"),
    stage: str | None = Query(None, description="only runs of this stage (with pipeline; any case)"),
    run: str | None = Query(None, description="only this run's (its id or a unique prefix)"),
    resource: str | None = Query(None, description="only those acting on this resource"),
    platformId: str | None = Query(None, description="only the one the platform gave this id"),
    _: Principal = VIEWER,
    app: Application = APP,
) -> RecordPage:
    kinds = [_kind(word) for word in kind] or list(RecordKind)
    run_id = (await run_in_project(app, projectId, run)).run.id if run is not None else None
    wanted = RecordFilter(kinds, pipeline, stage, run_id, resource, platformId)

    async def fetch(cursor: str | None, limit: int) -> Page[PlatformRecord]:
        found = await platform_records.records_page(app.db, projectId, wanted, cursor=cursor, limit=limit)
        return Page(found.records, found.next_cursor)

    page = await fetch_page(paging, fetch)
    return RecordPage(
        data=RecordList(records=[RecordShape.of(record) for record in page.items]),
        pagination=Pagination.of(page),
    )


async def get_record(_: Principal = VIEWER, record: PlatformRecord = RECORD_OF_PATH) -> Answer[RecordShape]:
    return Answer[RecordShape](data=RecordShape.of(record))


async def record_log(
    lines: int = Query(100, ge=1, le=MOST_LOG_LINES, description="how many lines from the end"),
    _: Principal = VIEWER,
    record: PlatformRecord = RECORD_OF_PATH,
    app: Application = APP,
) -> PlainTextResponse:
    found = await platform_records.record_log(app.db, app.drivers, record, lines=lines)
    return PlainTextResponse("".join(f"{line}\n" for line in found))


async def record_log_lines(
    after: int | None = Query(
        None,
        ge=0,
        le=LARGEST_INTEGER,
        description="only the lines past this line number (0: from the first); without it, the last lines",
    ),
    limit: int = Query(
        NUMBERED_LINES_DEFAULT, ge=1, le=MOST_LOG_LINES, description="at most this many lines"
    ),
    _: Principal = VIEWER,
    record: PlatformRecord = RECORD_OF_PATH,
    app: Application = APP,
) -> Answer[LogLinesShape]:
    """The complete lines of the log (a last line without its newline yet comes once ended), each with
    its number from the log's start, and how many it holds: a follower asks for those past the last
    number it got, so that it sees every new line once. Past the end: no lines."""
    found = await platform_records.record_log_lines(app.db, app.drivers, record, after=after, limit=limit)
    return Answer[LogLinesShape](data=LogLinesShape.of(found))


def _kind(word: str) -> RecordKind:
    try:
        return RecordKind(word.strip().lower())
    except ValueError:
        known = ", ".join(str(kind) for kind in RecordKind)
        raise ApiError(400, f"kind '{word}' is not a record kind (known: {known})") from None

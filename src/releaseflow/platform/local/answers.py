"""The answers of the local driver: its records (builds, deployments, job runs, backups) as ``DriverAnswer``.

Each answer's ``data`` is documented in ``docs/drivers.md``; an answer still in progress carries the
small JSON handle that ``LocalDriver.follow`` reads to look again.
"""

from __future__ import annotations

from typing import Any

from releaseflow.platform.driver import AnswerState, Artifact, DriverAnswer
from releaseflow.platform.local.artifacts import BuildRecord, BuildStatus
from releaseflow.platform.local.jobs import JobRun, JobRunStatus
from releaseflow.platform.local.postgres_records import Backup, BackupStatus, Restore
from releaseflow.platform.local.service_records import Deployment, DeploymentStatus


def build_answer(build: BuildRecord, *, reused: bool) -> DriverAnswer:
    data = {
        "id": build.id,
        "sha": build.commit,
        "branch": build.branch,
        "buildService": build.build_service,
        "status": build.status.value,
        "reused": reused,
        "logPath": build.log_path,
    }
    if build.status is BuildStatus.SUCCESS:
        return DriverAnswer(AnswerState.DONE, data=data)
    if build.status is BuildStatus.FAILED:
        return DriverAnswer(AnswerState.FAILED, data=data, message=build.error or "the build failed")
    return DriverAnswer(AnswerState.IN_PROGRESS, data=data, handle={"buildId": build.id, "reused": reused})


def deployment_answer(deployment: Deployment, target: str) -> DriverAnswer:
    data = {"artifact": deployment.artifact.to_data(), "deploymentId": deployment.id, "target": target}
    if deployment.status is DeploymentStatus.RUNNING:
        return DriverAnswer(AnswerState.DONE, data=data)
    if deployment.status is DeploymentStatus.FAILED:
        return DriverAnswer(
            AnswerState.FAILED, data=data, message=deployment.error, retryable=deployment.retryable
        )
    return DriverAnswer(
        AnswerState.IN_PROGRESS, data=data, handle={"deploymentId": deployment.id, "target": target}
    )


def job_answer(run: JobRun) -> DriverAnswer:
    data = {
        "id": run.id,
        "jobId": run.job_id,
        "exitCode": run.exit_code,
        "status": run.status.value,
        "logPath": str(run.log_path),
    }
    if run.status is JobRunStatus.SUCCEEDED:
        return DriverAnswer(AnswerState.DONE, data=data)
    if run.status is JobRunStatus.FAILED:
        return DriverAnswer(AnswerState.FAILED, data=data, message=run.error or "the job run failed")
    return DriverAnswer(AnswerState.IN_PROGRESS, data=data, handle={"jobRunId": run.id})


def backup_answer(backup: Backup) -> DriverAnswer:
    data = {**backup.to_data(), "id": backup.id, "size": backup.size_bytes}
    return _record_answer(backup.status, data, backup.error, {"backupId": backup.id})


def restore_answer(restore: Restore) -> DriverAnswer:
    data = {**restore.to_data(), "id": restore.id}
    return _record_answer(restore.status, data, restore.error, {"restoreId": restore.id})


def _record_answer(status: BackupStatus, data: dict[str, Any], error: str, handle: Any) -> DriverAnswer:
    if status is BackupStatus.SUCCEEDED:
        return DriverAnswer(AnswerState.DONE, data=data)
    if status is BackupStatus.FAILED:
        return DriverAnswer(AnswerState.FAILED, data=data, message=error or "it failed")
    return DriverAnswer(AnswerState.IN_PROGRESS, data=data, handle=handle)


def build_artifact(build: BuildRecord) -> Artifact:
    return Artifact(
        kind="build",
        build_service=build.build_service,
        build_id=build.id,
        commit=build.commit,
        branch=build.branch,
        committed_at=build.committed_at.isoformat() if build.committed_at else None,
    )

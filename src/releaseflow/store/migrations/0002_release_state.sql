-- Release state: what each service and job runs now, which run put it there, and the history.

CREATE TABLE release_state (
    project_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    artifact TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs (id),
    node_path TEXT NOT NULL,
    deployed_at @TIME@ NOT NULL,
    PRIMARY KEY (project_id, resource_id)
);

CREATE TABLE release_history (
    id @SERIAL_PK@,
    project_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    artifact TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs (id),
    node_path TEXT NOT NULL,
    deployed_at @TIME@ NOT NULL
);
CREATE INDEX release_history_by_resource ON release_history (project_id, resource_id, id);
CREATE INDEX release_history_by_run ON release_history (run_id);

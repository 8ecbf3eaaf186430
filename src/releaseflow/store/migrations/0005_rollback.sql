-- Rollback and the history it reads.
-- What started each run, structured: the kind of origin (person, token, git, webhook, rollback) and
-- who or what (a user name, a token's name, a commit, the run rolled back to).
ALTER TABLE runs ADD COLUMN origin_kind TEXT NOT NULL DEFAULT 'person';
ALTER TABLE runs ADD COLUMN origin_by TEXT NOT NULL DEFAULT '';
-- The runs list of a stage: newest first, filtered by kind or status, paged by seq.
CREATE INDEX runs_by_flow_kind_seq ON runs (flow_id, kind, seq);
CREATE INDEX runs_by_flow_status_seq ON runs (flow_id, status, seq);
CREATE INDEX runs_by_rollback_of ON runs (rollback_of) WHERE rollback_of IS NOT NULL;

-- The release state of a run's stage right after the run concluded, written in the transaction that
-- concludes it: what a rollback to the run restores.
CREATE TABLE run_release_states (
    run_id TEXT NOT NULL REFERENCES runs (id),
    resource_id TEXT NOT NULL,
    artifact TEXT NOT NULL,
    set_by_run TEXT NOT NULL,
    deployed_at @TIME@ NOT NULL,
    PRIMARY KEY (run_id, resource_id)
);

-- A pinned stage: automatic triggers (git push, webhook) do not deploy over it.
CREATE TABLE stage_pins (
    flow_id TEXT PRIMARY KEY REFERENCES release_flows (id),
    pinned_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    run_id TEXT REFERENCES runs (id),
    pinned_at @TIME@ NOT NULL
);

-- Runs an automatic trigger asked for while the stage was pinned: refused, and kept here with why.
CREATE TABLE skipped_triggers (
    id @SERIAL_PK@,
    flow_id TEXT NOT NULL REFERENCES release_flows (id),
    origin_kind TEXT NOT NULL,
    origin_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    at @TIME@ NOT NULL
);
CREATE INDEX skipped_triggers_by_flow ON skipped_triggers (flow_id, id);

-- What a rollback run changes, per target: the artifact before and the one rolled back to.
CREATE TABLE rollback_targets (
    run_id TEXT NOT NULL REFERENCES runs (id),
    resource_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_artifact TEXT,
    to_artifact TEXT NOT NULL,
    PRIMARY KEY (run_id, resource_id)
);

-- The schema that the migrations produce, declared whole. Change it together with every new
-- migration; tests/integration/test_migrations.py builds a database both ways and compares them.

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at @TIME@ NOT NULL,
    updated_at @TIME@ NOT NULL
);

CREATE TABLE resources (
    project_id TEXT NOT NULL REFERENCES projects (id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    driver TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at @TIME@ NOT NULL,
    updated_at @TIME@ NOT NULL,
    archived_at @TIME@,
    PRIMARY KEY (project_id, id)
);

CREATE TABLE pipelines (
    project_id TEXT NOT NULL REFERENCES projects (id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at @TIME@ NOT NULL,
    updated_at @TIME@ NOT NULL,
    archived_at @TIME@,
    PRIMARY KEY (project_id, id)
);

CREATE TABLE stages (
    project_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    archived_at @TIME@,
    PRIMARY KEY (project_id, pipeline_id, name),
    FOREIGN KEY (project_id, pipeline_id) REFERENCES pipelines (project_id, id)
);

-- A resource belongs to at most one stage of one pipeline.
CREATE TABLE stage_resources (
    project_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    PRIMARY KEY (project_id, resource_id),
    FOREIGN KEY (project_id, resource_id) REFERENCES resources (project_id, id),
    FOREIGN KEY (project_id, pipeline_id, stage) REFERENCES stages (project_id, pipeline_id, name)
);

CREATE TABLE release_flows (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    current_version INTEGER NOT NULL,
    -- Makes ${fn.randomSecret(...)} stable across the runs of this flow.
    secret_seed TEXT NOT NULL,
    next_run_seq INTEGER NOT NULL DEFAULT 1,
    created_at @TIME@ NOT NULL,
    updated_at @TIME@ NOT NULL,
    archived_at @TIME@,
    UNIQUE (project_id, pipeline_id, stage),
    FOREIGN KEY (project_id, pipeline_id, stage) REFERENCES stages (project_id, pipeline_id, name)
);

CREATE TABLE release_flow_versions (
    flow_id TEXT NOT NULL REFERENCES release_flows (id),
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at @TIME@ NOT NULL,
    PRIMARY KEY (flow_id, version)
);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL REFERENCES release_flows (id),
    flow_version INTEGER NOT NULL,
    -- Order of creation within the flow: the queue is first in, first out by this number.
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    rollback_of TEXT REFERENCES runs (id),
    triggered_by TEXT NOT NULL,
    name TEXT,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    arguments TEXT NOT NULL,
    overrides TEXT NOT NULL,
    release_node_overrides TEXT NOT NULL,
    document TEXT NOT NULL,
    error TEXT,
    waiting_reason TEXT,
    created_at @TIME@ NOT NULL,
    started_at @TIME@,
    concluded_at @TIME@,
    updated_at @TIME@ NOT NULL,
    -- What started the run: person, token, git, webhook or rollback, and who or what.
    origin_kind TEXT NOT NULL DEFAULT 'person',
    origin_by TEXT NOT NULL DEFAULT '',
    -- The failed run this one resumes (its succeeded nodes are carried over), and the plan the run
    -- was started with (JSON; NULL for runs made before plans were kept).
    resumed_from TEXT REFERENCES runs (id),
    plan TEXT,
    -- The values of the run's ${refs.<trigger>.*}: branch, sha, repoUrl, pullRequestId by trigger ref.
    trigger_refs TEXT NOT NULL DEFAULT '{}',
    -- Keys of the arguments whose values are stored encrypted (JSON list).
    secret_arguments TEXT NOT NULL DEFAULT '[]',
    UNIQUE (flow_id, seq)
);
CREATE INDEX runs_by_flow_status ON runs (flow_id, status);
CREATE INDEX runs_by_flow_kind_seq ON runs (flow_id, kind, seq);
CREATE INDEX runs_by_flow_status_seq ON runs (flow_id, status, seq);
CREATE INDEX runs_by_rollback_of ON runs (rollback_of) WHERE rollback_of IS NOT NULL;
-- Delivery figures of a window: the runs from the last verdict before it (engine/metrics_window.py).
CREATE INDEX runs_by_flow_concluded ON runs (flow_id, concluded_at);

CREATE TABLE node_runs (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    path TEXT NOT NULL,
    parent_path TEXT,
    kind TEXT NOT NULL,
    ref TEXT,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    -- When set and past, a worker may claim the node (first attempt, retry, or next poll).
    due_at @TIME@,
    became_due_at @TIME@,
    lease_owner TEXT,
    -- Fencing token: bumped on every claim; an answer carrying an older token is refused.
    lease_token INTEGER NOT NULL DEFAULT 0,
    lease_expires_at @TIME@,
    wait_deadline @TIME@,
    next_attempt_at @TIME@,
    started_at @TIME@,
    ended_at @TIME@,
    code TEXT,
    data TEXT,
    error TEXT,
    attempts TEXT NOT NULL DEFAULT '[]',
    wait_state TEXT,
    cause TEXT,
    -- Resolved when an attempt begins (NULL before): seconds between attempts, the node's own
    -- timeoutDuration (NULL: the engine's default for its kind).
    backoff_seconds DOUBLE PRECISION,
    timeout_seconds DOUBLE PRECISION,
    -- Set on a node carried over by a resume: the run whose response it keeps (it did not run again).
    carried_from TEXT,
    UNIQUE (run_id, path)
);
CREATE INDEX node_runs_due ON node_runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX node_runs_leased ON node_runs (lease_expires_at) WHERE lease_owner IS NOT NULL;

-- Append-only: every transition of a run or node, with time and cause.
CREATE TABLE events (
    id @SERIAL_PK@,
    run_id TEXT NOT NULL REFERENCES runs (id),
    node_path TEXT,
    at @TIME@ NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    cause TEXT NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, id);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at @TIME@ NOT NULL,
    heartbeat_at @TIME@ NOT NULL
);

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

-- The release state of a run's stage right after the run concluded (written when it concludes).
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

-- Runs an automatic trigger asked for while the stage was pinned: refused, kept with the reason.
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
CREATE INDEX release_history_by_stage ON release_history (project_id, pipeline_id, stage, id);

-- Every request a trigger received for a flow: what was asked, started/skipped/refused and why.
CREATE TABLE trigger_log (
    id @SERIAL_PK@,
    flow_id TEXT NOT NULL REFERENCES release_flows (id),
    source TEXT NOT NULL,
    request TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    run_id TEXT REFERENCES runs (id),
    at @TIME@ NOT NULL
);
CREATE INDEX trigger_log_by_flow ON trigger_log (flow_id, id);

-- The secret of a flow's webhook URL. Found by the SHA-256 of the token (so the lookup leaks nothing
-- about the token), then compared in constant time; the token is kept to show the URL again.
CREATE TABLE webhook_tokens (
    flow_id TEXT PRIMARY KEY REFERENCES release_flows (id),
    token_hash TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL,
    created_at @TIME@ NOT NULL
);

-- Deliveries of GitHub and GitLab webhooks already accepted: a replayed delivery id is refused.
CREATE TABLE webhook_deliveries (
    provider TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    at @TIME@ NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);

-- The head of each watched branch of a local repository, as the poller last saw it.
CREATE TABLE git_watch_heads (
    repository TEXT NOT NULL,
    branch TEXT NOT NULL,
    sha TEXT NOT NULL,
    seen_at @TIME@ NOT NULL,
    PRIMARY KEY (repository, branch)
);

-- API tokens: the secret is shown once and only its SHA-256 is kept. A token holds one role in one
-- project ('*': every project); it stops working when revoked or past its expiry.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at @TIME@ NOT NULL,
    expires_at @TIME@,
    revoked_at @TIME@,
    last_used_at @TIME@
);

-- Secrets and markers of the server itself, each made once: the key that lets Message nodes post to
-- the inbox, and the record that the first admin token was made (so it never is again).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at @TIME@ NOT NULL
);

-- Approval nodes waiting for a person: what `releaseflow approvals` lists, without a scan of every node.
CREATE INDEX node_runs_waiting_approvals ON node_runs (run_id) WHERE kind = 'Approval' AND status = 'waiting';

-- Subscriptions to run events of a project, or of one pipeline of it (pipeline_id NULL: all of them).
-- events: the subscribed event names between commas (",started,failed,"), matched in SQL.
CREATE TABLE notification_subscriptions (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    pipeline_id TEXT,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL,
    -- Declared in the configuration file (apply reconciles it) or added by hand.
    source TEXT NOT NULL,
    created_at @TIME@ NOT NULL
);
CREATE INDEX notification_subscriptions_by_project ON notification_subscriptions (project_id);

-- The outbox: one row per event and subscription, written in the transaction of the run's change, so
-- a crash loses none; a deliverer sends it (at least once) until the receiver answers 2xx or the
-- attempts run out. id is the delivery id receivers deduplicate on.
CREATE TABLE notification_deliveries (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs (id),
    event TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    cause TEXT NOT NULL,
    at @TIME@ NOT NULL,
    -- pending (to send at due_at), delivered, failed (gave up after the last attempt).
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at @TIME@,
    last_status_code INTEGER,
    last_error TEXT,
    delivered_at @TIME@
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (due_at) WHERE state = 'pending';
CREATE INDEX notification_deliveries_by_subscription ON notification_deliveries (subscription_id, at);

-- One row per attempt to send a delivery: the delivery log.
CREATE TABLE notification_attempts (
    id @SERIAL_PK@,
    delivery_id TEXT NOT NULL REFERENCES notification_deliveries (id),
    attempt INTEGER NOT NULL,
    at @TIME@ NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX notification_attempts_by_delivery ON notification_attempts (delivery_id, attempt);

-- User accounts for the web interface (passwords, roles per project, sessions, failed sign-ins).

-- A user signs in with name and password; a disabled one cannot (and its sessions end).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at @TIME@ NOT NULL,
    password_changed_at @TIME@ NOT NULL,
    disabled_at @TIME@
);

-- One role per user and project ('*': every project); granting another role replaces it.
CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id),
    project_id TEXT NOT NULL,
    role TEXT NOT NULL,
    granted_at @TIME@ NOT NULL,
    PRIMARY KEY (user_id, project_id)
);

-- A signed-in browser: the cookie holds the secret, only its SHA-256 is kept. It ends at its
-- expiry, on sign-out (revoked) or when its user is disabled.
CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    secret_hash TEXT NOT NULL UNIQUE,
    created_at @TIME@ NOT NULL,
    expires_at @TIME@ NOT NULL,
    revoked_at @TIME@
);
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);

-- Failed sign-ins in a row per name tried, known or not (so a lock says nothing about whether the
-- name exists); a successful sign-in clears its row.
CREATE TABLE sign_in_failures (
    name TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_at @TIME@ NOT NULL
);

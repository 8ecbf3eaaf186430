-- Approvals waiting for people; notifications of run events (subscriptions, the outbox, its log);
-- secret run arguments.

-- Keys of the arguments whose values are stored encrypted (JSON list).
ALTER TABLE runs ADD COLUMN secret_arguments TEXT NOT NULL DEFAULT '[]';

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

-- Triggers: what a git push, a pull request or a webhook asked for, and what came of it.
-- The values a run's ${refs.<trigger>.*} read (branch, sha, repoUrl, pullRequestId by trigger ref),
-- fixed when the run is created: from the event that started it, its overrides or the trigger.
ALTER TABLE runs ADD COLUMN trigger_refs TEXT NOT NULL DEFAULT '{}';

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

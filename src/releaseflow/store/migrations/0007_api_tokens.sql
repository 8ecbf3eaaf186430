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

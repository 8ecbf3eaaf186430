-- User accounts for the web interface: a name and an scrypt password hash, roles per project like
-- tokens, sessions, and the failed sign-ins that lock a name for a while.

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

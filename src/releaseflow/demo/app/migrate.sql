-- The demo's migration: run by the migrate jobs with psql against the stage's PostgreSQL addon.
CREATE TABLE IF NOT EXISTS releases (version text PRIMARY KEY, migrated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO releases (version) VALUES (:'version') ON CONFLICT DO NOTHING;

-- A node's retry and timeout settings, resolved once when an attempt begins and stored with it
-- (maxAttempts already has its column). NULL: not begun yet, and the engine's defaults apply.

ALTER TABLE node_runs ADD COLUMN backoff_seconds DOUBLE PRECISION;
ALTER TABLE node_runs ADD COLUMN timeout_seconds DOUBLE PRECISION;

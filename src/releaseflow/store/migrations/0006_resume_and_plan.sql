-- Resume and plan. A run made by resuming a failed one names it (resumed_from); the nodes that had
-- succeeded there are carried into the new run with their responses, not run again, and say where
-- they came from (carried_from). Every run keeps the plan it was started with (JSON; NULL for runs
-- made before plans were kept).

ALTER TABLE runs ADD COLUMN resumed_from TEXT REFERENCES runs (id);
ALTER TABLE runs ADD COLUMN plan TEXT;
ALTER TABLE node_runs ADD COLUMN carried_from TEXT;

-- A stage's timeline and delivery figures read its deploys newest first without sorting the
-- project's whole history.
CREATE INDEX release_history_by_stage ON release_history (project_id, pipeline_id, stage, id);

-- Archive markers: pruning a project's pipeline, stage, release flow or resource that has history
-- (runs, deployments) archives it instead of deleting it. Archived rows are left out of lists and
-- cannot start runs; their runs, flow versions and release state stay readable. NULL: not archived.

ALTER TABLE resources ADD COLUMN archived_at @TIME@;
ALTER TABLE pipelines ADD COLUMN archived_at @TIME@;
ALTER TABLE stages ADD COLUMN archived_at @TIME@;
ALTER TABLE release_flows ADD COLUMN archived_at @TIME@;

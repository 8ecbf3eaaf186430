-- Delivery figures of a window read the runs from the last one before it that said how the stage was
-- (engine/metrics_window.py), found by conclusion; without this index that read scanned every run.
CREATE INDEX runs_by_flow_concluded ON runs (flow_id, concluded_at);

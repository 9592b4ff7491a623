-- One time axis per run (core/bench/timeline.py). DuckLake-compatible: columns only.
-- Each request's start and end in seconds from its run's (sitting's) start, on one perf_counter clock;
-- the UTC wall time of that start is in runs.environment's "clock".
ALTER TABLE requests ADD COLUMN run_start_s DOUBLE;
ALTER TABLE requests ADD COLUMN run_end_s DOUBLE;

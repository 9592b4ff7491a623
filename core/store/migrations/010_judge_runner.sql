-- Who runs a judge run (issue 11, honest page): another process, or a later read in this one, can tell a
-- 'running' judge run whose runner is gone (-> interrupted), as core/store/bench.py does for benchmark runs.
-- DuckLake-compatible: columns only (no key, no index, no non-literal default).
ALTER TABLE judge_runs ADD COLUMN runner_pid INTEGER;
ALTER TABLE judge_runs ADD COLUMN runner_host VARCHAR;
ALTER TABLE judge_runs ADD COLUMN runner_started DOUBLE;   -- the runner process's create time (epoch s), against PID reuse
ALTER TABLE judge_runs ADD COLUMN note VARCHAR;            -- why it ended as it did (cancelled, stopped by an error, runner gone)

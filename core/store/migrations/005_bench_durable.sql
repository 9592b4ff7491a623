-- Issue 9: durable runs, resume, one meaning per number, memory and CPU of every engine.
-- DuckLake-compatible: columns only (no key, no index, no non-literal default).

-- Who runs the run: another process can tell a 'running' run whose runner is gone (-> interrupted).
ALTER TABLE runs ADD COLUMN runner_pid INTEGER;
ALTER TABLE runs ADD COLUMN runner_host VARCHAR;
ALTER TABLE runs ADD COLUMN runner_started DOUBLE;       -- the runner process's create time (epoch s), against PID reuse
ALTER TABLE runs ADD COLUMN specs JSON;                  -- the models as asked (ModelSpec + model files fingerprint), for --resume
ALTER TABLE runs ADD COLUMN resumed INTEGER;             -- how many times the run was resumed

-- Per request: which sitting of the run measured it (0 = first, 1 = first resume...), connection set-up
-- apart from TTFT, and the wait for an engine that serves one request at a time.
ALTER TABLE requests ADD COLUMN segment INTEGER;
ALTER TABLE requests ADD COLUMN connect_ms DOUBLE;       -- opening a connection (TCP/TLS), outside TTFT; NULL = none opened
ALTER TABLE requests ADD COLUMN engine_wait_ms DOUBLE;   -- waiting for an engine that serves one request at a time
ALTER TABLE requests ADD COLUMN engine_wait_source VARCHAR;  -- measured | inferred

-- Per level: the app's own CPU over the measured window, how the model's process was found, decode speed.
ALTER TABLE run_models ADD COLUMN observer_cpu_s DOUBLE;
ALTER TABLE run_models ADD COLUMN pid_source VARCHAR;    -- launched | port | user | unknown

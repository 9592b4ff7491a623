-- Numbers that survive a real laptop (issue 20). DuckLake-compatible: columns only (no key, no index,
-- no non-literal default).
-- The order candidates ran in: each request's turn (a model's requests of one round, or of the whole level
-- when blocked; numbered from 0 in each sitting) and its model's position in that round's rotation.
ALTER TABLE requests ADD COLUMN turn INTEGER;
ALTER TABLE requests ADD COLUMN turn_position INTEGER;
-- The noise meter per level (core/bench/noise.py): other programs' CPU, steal, CPU frequency, load average.
ALTER TABLE run_models ADD COLUMN noisy BOOLEAN;
ALTER TABLE run_models ADD COLUMN noise JSON;
-- Energy per level (core/bench/energy.py): RAPL over the window minus an idle baseline, or an estimate.
ALTER TABLE run_models ADD COLUMN energy JSON;
ALTER TABLE run_models ADD COLUMN energy_j_per_request DOUBLE;
ALTER TABLE run_models ADD COLUMN energy_j_per_token DOUBLE;
ALTER TABLE run_models ADD COLUMN energy_estimate BOOLEAN;
-- Power and thermal state at the run's end (the start is in runs.environment).
ALTER TABLE runs ADD COLUMN environment_end JSON;

-- Fleet campaigns (issue 21): one plan (models, prompt set, settings, target devices) that every device runs.
-- A name has numbered versions; a version's plan never changes (plan_sha256 is the hash of the plan as stored).
-- campaign_runs links each run to the campaign it ran for (run-scoped: it travels in run bundles), with the
-- models this device skipped and why. DuckLake-compatible as written: no key, no index, no default.
CREATE TABLE campaigns (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMP,
    plan JSON NOT NULL,
    plan_sha256 VARCHAR NOT NULL,
    prompt_set VARCHAR,
    prompt_set_hash VARCHAR NOT NULL,
    prompts JSON NOT NULL,
    devices JSON NOT NULL
);
CREATE TABLE campaign_runs (
    run_id VARCHAR NOT NULL,
    campaign VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    plan_sha256 VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    skipped JSON,
    created_at TIMESTAMP
);

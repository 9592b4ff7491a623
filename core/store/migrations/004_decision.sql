-- Saved decisions: everything needed to show, re-check and present a choice later.
CREATE TABLE decisions (
    name           VARCHAR PRIMARY KEY,
    created_at     TIMESTAMP DEFAULT current_timestamp,
    updated_at     TIMESTAMP DEFAULT current_timestamp,
    winner         VARCHAR,                -- candidate id, NULL when no candidate passed the constraints
    run_ids        JSON NOT NULL,          -- list of run ids
    weights        JSON NOT NULL,          -- {criterion: weight}, sums to 1
    constraints    JSON NOT NULL,          -- {"constraints": [...], "require_commercial": bool}
    latency_metric VARCHAR NOT NULL,       -- e2e_p95 | ttft_p95
    normalization  VARCHAR NOT NULL,       -- minmax | rank
    result         JSON NOT NULL,          -- the matrix as `python -m core decide --json` writes it
    context        JSON,                   -- run environments, prompt-set hashes, rubrics, judge templates
    notes          VARCHAR
);

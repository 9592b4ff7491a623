-- Quality: rubrics, automatic checks, human scores, judge runs and their verdicts.
-- Scores are stored on the criterion's own scale (e.g. 1..5); normalisation to 0..1 happens in core.quality.

-- A rubric: criteria + per-prompt expectations + automatic checks.
CREATE TABLE rubrics (
    name        VARCHAR PRIMARY KEY,
    description VARCHAR,
    prompt_set  VARCHAR,                    -- the prompt set it was written for (informative)
    updated_at  TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE rubric_criteria (
    rubric      VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    description VARCHAR NOT NULL,
    scale_min   INTEGER NOT NULL,
    scale_max   INTEGER NOT NULL,
    weight      DOUBLE NOT NULL,
    PRIMARY KEY (rubric, name)
);

-- Per prompt: expected aspects and an optional reference answer.
CREATE TABLE rubric_prompts (
    rubric           VARCHAR NOT NULL,
    prompt_id        VARCHAR NOT NULL,
    expected_aspects JSON,                  -- list of strings
    reference_answer VARCHAR,
    PRIMARY KEY (rubric, prompt_id)
);

-- Automatic checks; prompt_id '*' applies to every prompt.
CREATE TABLE rubric_checks (
    rubric    VARCHAR NOT NULL,
    prompt_id VARCHAR NOT NULL,
    position  INTEGER NOT NULL,
    spec      JSON NOT NULL,                -- {"kind": ..., ...} as in the rubric file
    PRIMARY KEY (rubric, prompt_id, position)
);

-- One result per output x check (re-running the checks replaces them).
CREATE TABLE check_results (
    run_id     VARCHAR NOT NULL,
    request_id VARCHAR NOT NULL,
    rubric     VARCHAR NOT NULL,
    check_key  VARCHAR NOT NULL,            -- prompt_id-or-*#position
    kind       VARCHAR NOT NULL,
    spec       JSON NOT NULL,
    passed     BOOLEAN NOT NULL,
    detail     VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (request_id, rubric, check_key)
);

-- Scores given by people (blind or from an annotation file).
CREATE TABLE human_scores (
    run_id     VARCHAR NOT NULL,
    request_id VARCHAR NOT NULL,
    rubric     VARCHAR NOT NULL,
    rater      VARCHAR NOT NULL,
    criterion  VARCHAR NOT NULL,
    score      DOUBLE NOT NULL,
    updated_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (request_id, rubric, rater, criterion)
);

CREATE TABLE human_comments (
    run_id     VARCHAR NOT NULL,
    request_id VARCHAR NOT NULL,
    rubric     VARCHAR NOT NULL,
    rater      VARCHAR NOT NULL,
    comment    VARCHAR,
    updated_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (request_id, rubric, rater)
);

-- Judge prompt templates, by version (text kept so every score can be traced to the exact wording).
CREATE TABLE judge_templates (
    version    VARCHAR PRIMARY KEY,
    kind       VARCHAR NOT NULL,            -- pointwise | pairwise
    text       VARCHAR NOT NULL,
    created_at TIMESTAMP DEFAULT current_timestamp
);

-- One judge pass over a run.
CREATE TABLE judge_runs (
    judge_run_id     VARCHAR PRIMARY KEY,
    run_id           VARCHAR NOT NULL,
    rubric           VARCHAR NOT NULL,
    judge_model      VARCHAR NOT NULL,
    judge_backend    VARCHAR NOT NULL,      -- foundry | openai | llamacpp
    judge_endpoint   VARCHAR,
    mode             VARCHAR NOT NULL,      -- pointwise | pairwise
    template_version VARCHAR NOT NULL,
    settings         JSON,                  -- temperature, max_tokens, seed, retries, json_schema
    warnings         JSON,                  -- e.g. same-family judge and candidate
    status           VARCHAR NOT NULL,      -- running | completed | interrupted
    created_at       TIMESTAMP DEFAULT current_timestamp,
    finished_at      TIMESTAMP
);

-- One pointwise judgement of one output (all criteria in one answer).
CREATE TABLE judgements (
    judgement_id     VARCHAR PRIMARY KEY,
    judge_run_id     VARCHAR NOT NULL,
    run_id           VARCHAR NOT NULL,
    request_id       VARCHAR NOT NULL,
    rubric           VARCHAR NOT NULL,
    template_version VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,      -- ok | failed
    rationale        VARCHAR,
    raw              VARCHAR,               -- the judge's last answer, verbatim
    raw_attempts     JSON,                  -- every answer, one per attempt
    attempts         INTEGER NOT NULL,
    error            VARCHAR,               -- why it failed (parse error, transport error)
    messages         JSON,                  -- the exact messages sent (first attempt)
    created_at       TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE judge_scores (
    judgement_id VARCHAR NOT NULL,
    criterion    VARCHAR NOT NULL,
    score        DOUBLE NOT NULL,
    PRIMARY KEY (judgement_id, criterion)
);

-- Pairwise: each pair judged in both orders; "inconsistent" when the two disagree.
CREATE TABLE pairwise_verdicts (
    judge_run_id     VARCHAR NOT NULL,
    run_id           VARCHAR NOT NULL,
    rubric           VARCHAR NOT NULL,
    prompt_id        VARCHAR NOT NULL,
    request_a        VARCHAR NOT NULL,
    request_b        VARCHAR NOT NULL,
    model_a          VARCHAR NOT NULL,
    model_b          VARCHAR NOT NULL,
    template_version VARCHAR NOT NULL,
    verdict_ab       VARCHAR NOT NULL,      -- a | b | tie | failed (a shown first)
    verdict_ba       VARCHAR NOT NULL,      -- a | b | tie | failed (b shown first), mapped back to a/b
    verdict          VARCHAR NOT NULL,      -- a | b | tie | inconsistent | failed
    rationale_ab     VARCHAR,
    rationale_ba     VARCHAR,
    raw_ab           VARCHAR,
    raw_ba           VARCHAR,
    error            VARCHAR,
    created_at       TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (judge_run_id, request_a, request_b)
);
CREATE INDEX judgements_run ON judgements (run_id);
CREATE INDEX human_scores_run ON human_scores (run_id);

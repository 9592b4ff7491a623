-- Benchmark runs. Times are seconds or milliseconds as the column name says.
CREATE TABLE runs (
    run_id          VARCHAR PRIMARY KEY,
    created_at      TIMESTAMP DEFAULT current_timestamp,
    finished_at     TIMESTAMP,
    status          VARCHAR NOT NULL,          -- running | completed | interrupted | failed
    prompt_set      VARCHAR,                   -- name or path of the prompt set
    prompt_set_hash VARCHAR,                   -- sha256 of the canonical prompt list
    settings        JSON,                      -- rounds, warmup, max_tokens, temperature, seed, concurrency, timeout
    environment     JSON,                      -- CPU, cores, RAM, OS, Python, runtime and SDK versions
    note            VARCHAR
);

-- The prompts of a run, as they were sent.
CREATE TABLE run_prompts (
    run_id    VARCHAR NOT NULL,
    prompt_id VARCHAR NOT NULL,
    position  INTEGER NOT NULL,
    text      VARCHAR NOT NULL,
    tags      JSON,
    PRIMARY KEY (run_id, prompt_id)
);

-- One row per model x engine x concurrency level of a run.
CREATE TABLE run_models (
    run_id             VARCHAR NOT NULL,
    model              VARCHAR NOT NULL,       -- model id as the engine knows it
    backend            VARCHAR NOT NULL,       -- foundry | openai | llamacpp
    concurrency        INTEGER NOT NULL,
    status             VARCHAR NOT NULL,       -- ok | failed | interrupted | running
    error              VARCHAR,
    endpoint           VARCHAR,                -- base URL for HTTP engines
    model_version      VARCHAR,
    execution_provider VARCHAR,
    license            VARCHAR,
    disk_mb            DOUBLE,
    load_s             DOUBLE,
    rss_before_mb      DOUBLE,
    rss_after_load_mb  DOUBLE,
    peak_rss_mb        DOUBLE,
    cpu_s_per_token    DOUBLE,
    throughput_tok_s   DOUBLE,                 -- aggregate: output tokens / measured window
    token_count_source VARCHAR,                -- usage | tokenizer | chunks
    environment        JSON,
    position           INTEGER,                -- order of the model in the run
    label              VARCHAR,                -- the name the user gave (alias)
    pid                INTEGER,                -- process measured (worker / server), when known
    output_tokens      INTEGER,                -- successful requests' completion tokens, measured window
    window_s           DOUBLE,                 -- last end - first start of the measured window
    cpu_s              DOUBLE,                 -- CPU seconds of the model's process over the window
    notes              JSON,                   -- caveats (memory-mapped weights, load time meaning...)
    PRIMARY KEY (run_id, model, backend, concurrency)
);

-- Every request, warm-ups included (flagged), failures included (with their error).
CREATE TABLE requests (
    request_id         VARCHAR PRIMARY KEY,
    run_id             VARCHAR NOT NULL,
    model              VARCHAR NOT NULL,
    backend            VARCHAR NOT NULL,
    concurrency        INTEGER NOT NULL,
    prompt_id          VARCHAR NOT NULL,
    round              INTEGER NOT NULL,
    warmup             BOOLEAN NOT NULL DEFAULT false,
    ok                 BOOLEAN NOT NULL,
    start_offset_s     DOUBLE,                 -- start minus the level's start
    end_offset_s       DOUBLE,                 -- end (or failure) minus the level's start
    queue_ms           DOUBLE,                 -- waiting for a concurrency slot (never inside TTFT)
    ttft_ms            DOUBLE,
    e2e_ms             DOUBLE,
    tpot_ms            DOUBLE,                 -- (E2E - TTFT) / (tokens - 1)
    completion_tokens  INTEGER,
    prompt_tokens      INTEGER,
    token_count_source VARCHAR,                -- usage | tokenizer | chunks
    chunk_gaps_ms      DOUBLE[],
    chunk_count        INTEGER,
    finish_reason      VARCHAR,
    output_text        VARCHAR,
    error              VARCHAR,
    outlier            BOOLEAN DEFAULT false,
    created_at         TIMESTAMP DEFAULT current_timestamp
);
CREATE INDEX requests_run ON requests (run_id);

-- Issue 19: long prompts. One row per model of a length sweep (bench --lengths): the model's context
-- window, the context the run loaded it with, its KV cache share, how every request was kept out of the
-- engine's prompt cache, the sweep's points, the fitted TTFT(n) / TPOT(n) curves and the time to notes
-- at the run's target. DuckLake-compatible: no key, no index, no non-literal default.
CREATE TABLE length_sweeps (
    run_id                VARCHAR NOT NULL,
    model                 VARCHAR NOT NULL,
    backend               VARCHAR NOT NULL,
    lengths               JSON,      -- the target prompt lengths asked (tokens of the transcript message)
    context_window        INTEGER,   -- the model's window (tokens, from its metadata); NULL = unknown
    context_window_source VARCHAR,   -- genai_config | gguf | endpoint | none
    context_setting       INTEGER,   -- what the run loaded it with: Foundry max_length, llama.cpp n_ctx; NULL = the server's
    context_setting_name  VARCHAR,   -- max_length | n_ctx | none
    kv_bytes_per_token    BIGINT,
    kv_cache_mb           DOUBLE,    -- kv_bytes_per_token x context_setting
    tokenizer_source      VARCHAR,   -- gguf | tokenizer.json | calibrated
    cache_bust            VARCHAR,   -- how each measured request was kept out of the prompt cache
    truncating            BOOLEAN,   -- the engine reported fewer prompt tokens than were sent
    points                JSON,      -- per request: length, prompt_tokens, ttft_ms, tpot_ms, prefill, decode, peak, fitted, error
    fit                   JSON,      -- {"ttft_ms": {coef, degree, n_points, rmse}, "tpot_ms": {...}}
    target_prompt_tokens  INTEGER,
    target_output_tokens  INTEGER,
    ttft_at_target_ms     DOUBLE,
    tpot_at_target_ms     DOUBLE,
    time_to_notes_ms      DOUBLE,
    time_to_notes_low_ms  DOUBLE,    -- bootstrap 95% band; NULL when there are no more requests than parameters
    time_to_notes_high_ms DOUBLE,
    extrapolated          BOOLEAN,   -- the target lies beyond the longest prompt measured
    max_measured_tokens   INTEGER,
    prefill_tokens_per_s  DOUBLE,    -- median over the fitted requests
    created_at            TIMESTAMP
);

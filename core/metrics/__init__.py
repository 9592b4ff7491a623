"""Every benchmark number, defined once: the formulas (``formulas``: a request's row from its record, and what
a level's numbers are made of) and the table of metrics (``table``: one record per number with its name, unit,
label and definition beside its formula; the level result compiled from it). docs/metrics.md is written from
the table."""
from core.metrics.formulas import (  # noqa: F401
    MS_PER_S, aggregate_throughput_tok_s, completion_tokens_of, cpu_s_per_token, e2e_output_tokens_per_s,
    infer_engine_wait, is_ok, kv_cache_mb, most_common_error, outlier_flags, output_tokens, per_s,
    prefill_tokens_per_s, request_row, tails_indicative, time_to_notes_ms, token_count_source, tpot_ms, window_s,
)
from core.metrics.table import (  # noqa: F401
    BY_NAME, DEFINITIONS, DIST_STATS, IDENTITY, LABELS, LEVEL_METRICS, METRICS, RESULT_KEYS, SHOWN, LevelInputs,
    LevelResult, Metric, compile_level, level_result,
)

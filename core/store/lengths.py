"""Length sweeps in the store (migrations/012_lengths.sql): one row per run x model x engine.

``save_sweep(sweep)`` writes what ``core.bench.lengths`` measured; ``length_figures(run_id, ...)`` is the
query the decision reads (time to notes with its band and extrapolated flag, context window, prefill speed);
``run_sweeps(run_id)`` gives the whole rows (points, curves) to the report and the page.
"""
from __future__ import annotations

from core.store.db import connect, fetch_dicts, retrying, to_json

COLUMNS = (
    "run_id", "model", "backend", "lengths", "context_window", "context_window_source", "context_setting",
    "context_setting_name", "kv_bytes_per_token", "kv_cache_mb", "tokenizer_source", "cache_bust", "truncating",
    "points", "fit", "target_prompt_tokens", "target_output_tokens", "ttft_at_target_ms", "tpot_at_target_ms",
    "time_to_notes_ms", "time_to_notes_low_ms", "time_to_notes_high_ms", "extrapolated", "max_measured_tokens",
    "prefill_tokens_per_s",
)
JSON_COLUMNS = {"lengths", "points", "fit"}
FIGURES = (
    "run_id", "model", "backend", "time_to_notes_ms", "time_to_notes_low_ms", "time_to_notes_high_ms",
    "extrapolated", "target_prompt_tokens", "target_output_tokens", "ttft_at_target_ms", "tpot_at_target_ms",
    "max_measured_tokens", "context_window", "context_setting", "context_setting_name", "kv_cache_mb",
    "prefill_tokens_per_s", "truncating",
)


@retrying
def save_sweep(sweep: dict) -> None:
    """Store (or replace) one model's sweep of a run."""
    values = [to_json(sweep.get(c)) if c in JSON_COLUMNS else sweep.get(c) for c in COLUMNS]
    with connect() as con:
        con.execute("DELETE FROM length_sweeps WHERE run_id = ? AND model = ? AND backend = ?",
                    [sweep["run_id"], sweep["model"], sweep["backend"]])
        con.execute(f"INSERT INTO length_sweeps ({', '.join(COLUMNS)}, created_at) "
                    f"VALUES ({', '.join('?' for _ in COLUMNS)}, current_timestamp)", values)


def run_sweeps(run_id: str) -> list[dict]:
    """Every model's sweep of a run, whole (points and curves decoded), [] when the run has none."""
    with connect() as con:
        return fetch_dicts(con.execute(
            f"SELECT {', '.join(COLUMNS)} FROM length_sweeps WHERE run_id = ? ORDER BY model, backend", [run_id]),
            JSON_COLUMNS)


def length_figures(run_id: str, model: str | None = None, backend: str | None = None) -> list[dict]:
    """Per model of a run's length sweep, the figures a decision uses (one dict per model x engine):

    ``time_to_notes_ms`` (TTFT(n) + (out - 1) TPOT(n) at the run's target, from the fitted curves) with
    ``time_to_notes_low_ms`` / ``time_to_notes_high_ms`` (bootstrap 95% band, None when n/a) and
    ``extrapolated`` (the target beyond the longest prompt measured), ``target_prompt_tokens`` /
    ``target_output_tokens``, ``context_window`` (tokens; None = unknown), ``context_setting`` (what the run loaded
    the model with), ``kv_cache_mb``, ``prefill_tokens_per_s`` (median over the fitted requests), ``truncating``.
    [] when the run has no sweep (or not for that model)."""
    sql = f"SELECT {', '.join(FIGURES)} FROM length_sweeps WHERE run_id = ?"
    params: list = [run_id]
    if model is not None:
        sql += " AND model = ?"
        params.append(model)
    if backend is not None:
        sql += " AND backend = ?"
        params.append(backend)
    with connect() as con:
        return fetch_dicts(con.execute(sql + " ORDER BY model, backend", params))

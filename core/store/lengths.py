"""Length sweeps in the store (migrations/012_lengths.sql): one row per run x model x engine.

``save_sweep(sweep)`` writes what ``core.bench.sweep.plan`` measured; ``length_figures(run_id, ...)`` is the
query the decision reads (time to notes with its band and extrapolated flag, context window, prefill speed);
``run_sweeps(run_id)`` gives the whole rows (points, curves) to the report and the page.
"""
from __future__ import annotations

from core.store.db import connect, fetch_dicts, retrying, to_json, utc_now

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


INTEGER_LIMITS = {c: 2**31 - 1 for c in ("context_window", "context_setting", "target_prompt_tokens",
                                          "target_output_tokens", "max_measured_tokens")} | {"kv_bytes_per_token": 2**63 - 1}


def checked_count(value, limit: int = 2**31 - 1) -> int | None:
    """A count from outside (a window, tokens, bytes) as an int from 1 to ``limit`` (what its typed column holds),
    or None (unknown) when it is missing, not a whole number, not positive or too large."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        return None
    return value


@retrying
def save_sweep(sweep: dict) -> None:
    """Store (or replace) one model's sweep of a run; a count its INTEGER / BIGINT column cannot hold is stored as
    unknown (NULL), never a failed write."""
    values = [to_json(sweep.get(c)) if c in JSON_COLUMNS else
              checked_count(sweep.get(c), INTEGER_LIMITS[c]) if c in INTEGER_LIMITS and sweep.get(c) is not None
              else sweep.get(c) for c in COLUMNS]
    with connect() as con:
        con.execute("DELETE FROM length_sweeps WHERE run_id = ? AND model = ? AND backend = ?",
                    [sweep["run_id"], sweep["model"], sweep["backend"]])
        con.execute(f"INSERT INTO length_sweeps ({', '.join(COLUMNS)}, created_at) "
                    f"VALUES ({', '.join('?' for _ in COLUMNS)}, ?)", [*values, utc_now()])


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


def newest_figures(keys: list[tuple[str, str, str | None]]) -> dict[tuple, dict]:
    """For each (model, backend, device) the figures of its newest length sweep on that device (any run),
    with the sweep's ``run_id``; a key without a sweep is absent. The decision reads time to notes and the
    context window here: a sweep is its own run (concurrency 1, long prompts), so the run being decided on
    rarely holds one."""
    if not keys:
        return {}
    cols = ", ".join(f"s.{c}" for c in FIGURES)
    with connect() as con:
        rows = fetch_dicts(con.execute(
            f"SELECT {cols}, coalesce(r.device, 'unknown') AS device FROM length_sweeps s "
            "JOIN runs r USING (run_id) WHERE s.time_to_notes_ms IS NOT NULL OR s.context_window IS NOT NULL "
            "ORDER BY s.created_at DESC, s.run_id DESC"))
    wanted = {(m, b, d or "unknown") for m, b, d in keys}
    out: dict[tuple, dict] = {}
    for row in rows:
        key = (row["model"], row["backend"], row.pop("device"))
        if key in wanted and key not in out:
            out[key] = row
    return out

"""Benchmark runs in DuckDB: every SQL statement of the benchmark feature.

Tables (migrations/002_bench.sql): runs, run_prompts, run_models, requests.
Read functions for the other features: ``list_runs()``, ``get_run(run_id)``,
``run_requests(run_id, include_warmup=False)`` (a DataFrame), ``run_summary(run_id)`` (the CLI's
``--json`` results, recomputed from the stored rows by ``core.metrics``).
"""
from __future__ import annotations


import pandas as pd

from core.output import redact
from core.store.db import connect, fetch_dicts, flush_inlined, retrying, to_json

REQUEST_COLUMNS = (
    "request_id", "run_id", "model", "backend", "concurrency", "prompt_id", "round", "warmup", "ok",
    "start_offset_s", "end_offset_s", "queue_ms", "ttft_ms", "e2e_ms", "tpot_ms", "completion_tokens",
    "prompt_tokens", "token_count_source", "chunk_gaps_ms", "chunk_count", "finish_reason", "output_text",
    "error", "outlier",
)
RUN_MODEL_COLUMNS = (
    "run_id", "model", "backend", "concurrency", "status", "error", "endpoint", "model_version",
    "execution_provider", "license", "disk_mb", "load_s", "rss_before_mb", "rss_after_load_mb", "peak_rss_mb",
    "cpu_s_per_token", "throughput_tok_s", "token_count_source", "environment", "position", "label", "pid",
    "output_tokens", "window_s", "cpu_s", "notes",
)
JSON_COLUMNS = {"environment", "notes", "settings", "tags"}


def _dicts(cur) -> list[dict]:
    return fetch_dicts(cur, JSON_COLUMNS)


# -- writes ------------------------------------------------------------------------------------
@retrying
def create_run(run_id: str, *, prompt_set: str, prompt_set_hash: str, settings: dict, environment: dict,
               prompts: list[dict], note: str | None = None, device: str | None = None) -> None:
    with connect() as con:
        con.execute(
            "INSERT INTO runs (run_id, created_at, status, prompt_set, prompt_set_hash, settings, environment, note, "
            "device) VALUES (?, current_timestamp, 'running', ?, ?, ?, ?, ?, ?)",
            [run_id, prompt_set, prompt_set_hash, to_json(settings), to_json(redact(environment)), redact(note),
             device or (environment or {}).get("device")])
        con.executemany(
            "INSERT INTO run_prompts (run_id, prompt_id, position, text, tags) VALUES (?, ?, ?, ?, ?)",
            [[run_id, p["id"], i, p["text"], to_json(p.get("tags") or [])] for i, p in enumerate(prompts)])


@retrying
def finish_run(run_id: str, status: str, note: str | None = None) -> None:
    with connect() as con:
        con.execute("UPDATE runs SET status = ?, finished_at = current_timestamp, note = coalesce(?, note) "
                    "WHERE run_id = ?", [status, redact(note), run_id])
    flush_inlined()   # DuckLake: the run's small inserts written out as Parquet (no-op on a local file)


@retrying
def save_level(run_model: dict, requests: list[dict]) -> None:
    """One model x concurrency level: its run_models row (replaced) and its request rows, in one transaction."""
    rm = {c: run_model.get(c) for c in RUN_MODEL_COLUMNS}
    rm["error"], rm["endpoint"] = redact(rm["error"]), redact(rm["endpoint"])   # no key-shaped text is stored
    for c in ("environment", "notes"):
        rm[c] = to_json(redact(rm[c]))
    with connect() as con:
        con.execute("DELETE FROM run_models WHERE run_id = ? AND model = ? AND backend = ? AND concurrency = ?",
                    [rm["run_id"], rm["model"], rm["backend"], rm["concurrency"]])
        con.execute(f"INSERT INTO run_models ({', '.join(RUN_MODEL_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(RUN_MODEL_COLUMNS))})", [rm[c] for c in RUN_MODEL_COLUMNS])
        if requests:
            df = pd.DataFrame([{c: r.get(c) for c in REQUEST_COLUMNS} for r in requests], columns=list(REQUEST_COLUMNS))
            df["error"] = [redact(e) for e in df["error"]]
            df["chunk_gaps_ms"] = [list(map(float, g or [])) for g in df["chunk_gaps_ms"]]
            df["warmup"] = df["warmup"].fillna(False).astype(bool)
            con.register("new_requests", df)
            try:
                con.execute(f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}, created_at) "
                            f"SELECT {', '.join(REQUEST_COLUMNS)}, current_timestamp FROM new_requests")
            finally:
                con.unregister("new_requests")


@retrying
def delete_run(run_id: str) -> None:
    with connect() as con:
        for table in ("requests", "run_models", "run_prompts", "runs"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])  # table names are constants


@retrying
def mark_stale_runs(older_than_s: float = 24 * 3600) -> int:
    """Runs left 'running' by a process that died long ago become 'interrupted'."""
    with connect() as con:
        # no RETURNING: DuckLake does not support it on UPDATE / DELETE
        stale = "status = 'running' AND created_at < current_timestamp - to_seconds(?)"
        n = con.execute(f"SELECT count(*) FROM runs WHERE {stale}", [float(older_than_s)]).fetchone()[0]
        if n:
            con.execute("UPDATE runs SET status = 'interrupted', note = coalesce(note, 'process ended before the run "
                        f"finished') WHERE {stale}", [float(older_than_s)])
    return n


# -- reads -------------------------------------------------------------------------------------
def list_runs() -> list[dict]:
    """Every run, newest first, with its models and request counts."""
    with connect() as con:
        return _dicts(con.execute(
            "SELECT r.run_id, r.created_at, r.finished_at, r.status, coalesce(r.device, 'unknown') AS device, "
            " r.prompt_set, r.prompt_set_hash, r.settings, "
            " (SELECT string_agg(DISTINCT m.label || ' [' || m.backend || ']', ', ') FROM run_models m "
            "   WHERE m.run_id = r.run_id) AS models, "
            " (SELECT count(*) FROM requests q WHERE q.run_id = r.run_id AND NOT q.warmup) AS requests, "
            " (SELECT count(*) FROM requests q WHERE q.run_id = r.run_id AND NOT q.warmup AND NOT q.ok) AS failed "
            "FROM runs r ORDER BY r.created_at DESC, r.run_id DESC"))


def get_run(run_id: str) -> dict | None:
    """The run row with its prompts and run_models rows, or None."""
    with connect() as con:
        runs = _dicts(con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]))
        if not runs:
            return None
        run = runs[0]
        run["prompts"] = _dicts(con.execute(
            "SELECT prompt_id, position, text, tags FROM run_prompts WHERE run_id = ? ORDER BY position", [run_id]))
        run["models"] = _dicts(con.execute(
            "SELECT * FROM run_models WHERE run_id = ? ORDER BY position, model, backend, concurrency", [run_id]))
    return run


def run_requests(run_id: str, include_warmup: bool = False) -> pd.DataFrame:
    """Every request of a run as a DataFrame (warm-ups only when asked)."""
    with connect() as con:
        return con.execute(
            "SELECT q.*, p.position AS prompt_position FROM requests q "
            "LEFT JOIN run_prompts p ON p.run_id = q.run_id AND p.prompt_id = q.prompt_id "
            "WHERE q.run_id = ? AND (? OR NOT q.warmup) "
            "ORDER BY q.model, q.backend, q.concurrency, q.round, p.position",
            [run_id, include_warmup]).df()


def run_summary(run_id: str) -> list[dict]:
    """One result per model x concurrency level: the CLI ``--json`` shape, recomputed from the rows."""
    from core.metrics import level_result
    run = get_run(run_id)
    if run is None:
        return []
    df = run_requests(run_id)
    rows = df.to_dict("records") if len(df) else []
    for r in rows:
        for k, v in list(r.items()):
            if isinstance(v, float) and v != v:   # NaN from pandas -> None
                r[k] = None
    out = []
    for m in run["models"]:
        level_rows = [r for r in rows if r["model"] == m["model"] and r["backend"] == m["backend"]
                      and r["concurrency"] == m["concurrency"]]
        for r in level_rows:
            r["ok"] = bool(r["ok"])
        out.append(level_result(
            level_rows, model=m["model"], backend=m["backend"], concurrency=m["concurrency"],
            status="ok" if m["status"] == "ok" else "failed", error=m["error"], load=m))
    return out

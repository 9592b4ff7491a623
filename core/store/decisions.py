"""SQL for the decision matrix: candidate rows of benchmark runs, and saved decisions.

Every function opens its own short connection.
"""
from __future__ import annotations


from core.store.db import connect, fetch_dicts, from_json, retrying, to_json


# ------------------------------------------------------------------ benchmark inputs

def list_runs() -> list[dict]:
    """Runs that have at least one model row, newest first, with a short description."""
    with connect() as con:
        rows = fetch_dicts(con.execute(
            "SELECT r.run_id, r.created_at, r.status, r.prompt_set, r.note, "
            "       count(DISTINCT m.model || '|' || m.backend) AS candidates, "
            "       string_agg(DISTINCT m.model, ', ' ORDER BY m.model) AS models "
            "FROM runs r JOIN run_models m ON m.run_id = r.run_id "
            "GROUP BY ALL ORDER BY r.created_at DESC, r.run_id"))
    return rows


def runs(run_ids: list[str]) -> list[dict]:
    with connect() as con:
        rows = fetch_dicts(con.execute(
            "SELECT run_id, created_at, finished_at, status, prompt_set, prompt_set_hash, settings, environment, note "
            "FROM runs WHERE list_contains(?, run_id) ORDER BY created_at, run_id", [list(run_ids)]))
    for r in rows:
        r["settings"] = from_json(r["settings"])
        r["environment"] = from_json(r["environment"])
    return rows


def candidate_rows(run_ids: list[str]) -> list[dict]:
    """run_models rows at the lowest concurrency level of each (run, model, backend)."""
    with connect() as con:
        rows = fetch_dicts(con.execute(
            "SELECT run_id, model, backend, concurrency, status, error, endpoint, model_version, execution_provider, "
            "       license, disk_mb, load_s, peak_rss_mb, throughput_tok_s, environment, notes, label "
            "FROM run_models WHERE list_contains(?, run_id) "
            "QUALIFY row_number() OVER (PARTITION BY run_id, model, backend ORDER BY concurrency) = 1 "
            "ORDER BY run_id, model, backend", [list(run_ids)]))
    for r in rows:
        r["environment"] = from_json(r["environment"])
        r["notes"] = from_json(r["notes"]) or []
    return rows


def measured_requests(run_ids: list[str]) -> list[dict]:
    """Non-warm-up requests of the runs (successful and failed), for the lowest concurrency level of each model."""
    with connect() as con:
        return fetch_dicts(con.execute(
            "WITH lvl AS (SELECT run_id, model, backend, min(concurrency) AS concurrency FROM run_models "
            "             WHERE list_contains(?, run_id) GROUP BY ALL) "
            "SELECT q.run_id, q.model, q.backend, q.ok, q.e2e_ms, q.ttft_ms, q.tpot_ms, q.completion_tokens "
            "FROM requests q JOIN lvl USING (run_id, model, backend, concurrency) "
            "WHERE NOT q.warmup ORDER BY q.run_id, q.model, q.backend, q.prompt_id, q.round, q.request_id",
            [list(run_ids)]))


# ------------------------------------------------------------------ saved decisions

_JSON_COLS = ("run_ids", "weights", "constraints", "result", "context")


def decision_exists(name: str) -> bool:
    with connect() as con:
        return con.execute("SELECT count(*) FROM decisions WHERE name = ?", [name]).fetchone()[0] > 0


@retrying
def save_decision(rec: dict, *, replace: bool = False) -> None:
    """Insert a decision record (keys as the table's columns); `replace` overwrites one of the same name."""
    values = [to_json(rec.get(c)) if c in _JSON_COLS else rec.get(c)
              for c in ("name", "winner", "run_ids", "weights", "constraints", "latency_metric", "normalization",
                        "result", "context", "notes")]
    with connect() as con:
        if replace:
            con.execute("DELETE FROM decisions WHERE name = ?", [rec["name"]])
        con.execute(
            "INSERT INTO decisions (name, winner, run_ids, weights, constraints, latency_metric, normalization, "
            "result, context, notes, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp, current_timestamp)", values)


@retrying
def update_notes(name: str, notes: str) -> bool:
    with connect() as con:
        n = con.execute("SELECT count(*) FROM decisions WHERE name = ?", [name]).fetchone()[0]  # no RETURNING on DuckLake
        con.execute("UPDATE decisions SET notes = ?, updated_at = current_timestamp WHERE name = ?", [notes, name])
    return bool(n)


def get_decision(name: str) -> dict | None:
    with connect() as con:
        rows = fetch_dicts(con.execute(
            "SELECT name, created_at, updated_at, winner, run_ids, weights, constraints, latency_metric, "
            "normalization, result, context, notes FROM decisions WHERE name = ?", [name]))
    if not rows:
        return None
    r = rows[0]
    for c in _JSON_COLS:
        r[c] = from_json(r[c])
    return r


def list_decisions() -> list[dict]:
    with connect() as con:
        return fetch_dicts(con.execute(
            "SELECT name, created_at, updated_at, winner, latency_metric, normalization, run_ids "
            "FROM decisions ORDER BY updated_at DESC, name"))


@retrying
def delete_decision(name: str) -> bool:
    with connect() as con:
        n = con.execute("SELECT count(*) FROM decisions WHERE name = ?", [name]).fetchone()[0]  # no RETURNING on DuckLake
        con.execute("DELETE FROM decisions WHERE name = ?", [name])
    return bool(n)


# ------------------------------------------------------------------ the pipeline at a glance (Overview page)

def pipeline_counts() -> dict:
    """What exists at each step: endpoints, runs (latest), hand scores, judge runs, calibrations, decisions."""
    with connect() as con:
        one = lambda sql: con.execute(sql).fetchone()  # noqa: E731
        out = {
            "endpoints": one("SELECT count(*) FROM endpoints")[0],
            "runs": one("SELECT count(*) FROM runs")[0],
            "runs_completed": one("SELECT count(*) FROM runs WHERE status = 'completed'")[0],
            "scored_outputs": one("SELECT count(DISTINCT request_id) FROM human_scores")[0],
            "raters": one("SELECT count(DISTINCT rater) FROM human_scores")[0],
            "judge_runs": one("SELECT count(*) FROM judge_runs")[0],
            "judge_runs_completed": one("SELECT count(*) FROM judge_runs WHERE status = 'completed'")[0],
            "decisions": one("SELECT count(*) FROM decisions")[0],
        }
        latest = fetch_dicts(con.execute(
            "SELECT r.run_id, r.created_at, r.status, r.prompt_set, count(DISTINCT m.model || '|' || m.backend) AS "
            "models FROM runs r LEFT JOIN run_models m USING (run_id) GROUP BY ALL "
            "ORDER BY r.created_at DESC, r.run_id DESC LIMIT 1"))
        out["latest_run"] = latest[0] if latest else None
        last = fetch_dicts(con.execute("SELECT name, updated_at FROM decisions ORDER BY updated_at DESC, name LIMIT 1"))
        out["latest_decision"] = last[0] if last else None
        # judge calibration (against hand scores) is stored by the quality feature once it exists
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name ILIKE '%calibration%'").fetchall()}
        out["calibration_table"] = sorted(tables)[0] if tables else None
        out["calibrations"] = (one(f'SELECT count(*) FROM "{out["calibration_table"]}"')[0]
                               if out["calibration_table"] else None)
    return out

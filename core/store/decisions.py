"""SQL for saved decisions and the pipeline at a glance (the benchmark rows a decision reads are in bench.py).

Every function opens its own short connection.
"""
from __future__ import annotations


from core.store.db import connect, fetch_dicts, from_json, retrying, to_json, utc_now


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
    now = utc_now()
    with connect() as con:
        if replace:
            con.execute("DELETE FROM decisions WHERE name = ?", [rec["name"]])
        con.execute(
            "INSERT INTO decisions (name, winner, run_ids, weights, constraints, latency_metric, normalization, "
            "result, context, notes, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values + [now, now])


@retrying
def update_notes(name: str, notes: str) -> bool:
    with connect() as con:
        n = con.execute("SELECT count(*) FROM decisions WHERE name = ?", [name]).fetchone()[0]  # no RETURNING on DuckLake
        con.execute("UPDATE decisions SET notes = ?, updated_at = ? WHERE name = ?", [notes, utc_now(), name])
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

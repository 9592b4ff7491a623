"""Benchmark runs in DuckDB: every SQL statement of the benchmark feature.

Tables (migrations/002_bench.sql): runs, run_prompts, run_models, requests.
Read functions for the other features: ``list_runs()``, ``get_run(run_id)``,
``run_requests(run_id, include_warmup=False)`` (a DataFrame), ``run_summary(run_id)`` (the CLI's
``--json`` results, recomputed from the stored rows by ``core.metrics``).
"""
from __future__ import annotations


import pandas as pd

from core.output import redact
from core.store.db import connect, fetch_dicts, retrying, to_json, utc_now

REQUEST_COLUMNS = (
    "request_id", "run_id", "model", "backend", "concurrency", "prompt_id", "round", "warmup", "ok",
    "start_offset_s", "end_offset_s", "queue_ms", "ttft_ms", "e2e_ms", "tpot_ms", "completion_tokens",
    "prompt_tokens", "token_count_source", "chunk_gaps_ms", "chunk_count", "finish_reason", "output_text",
    "error", "outlier", "segment", "connect_ms", "engine_wait_ms", "engine_wait_source",
    "turn", "turn_position", "run_start_s", "run_end_s",
)
RUN_MODEL_COLUMNS = (
    "run_id", "model", "backend", "concurrency", "status", "error", "endpoint", "model_version",
    "execution_provider", "license", "disk_mb", "load_s", "rss_before_mb", "rss_after_load_mb", "peak_rss_mb",
    "cpu_s_per_token", "throughput_tok_s", "token_count_source", "environment", "position", "label", "pid",
    "output_tokens", "window_s", "cpu_s", "notes", "observer_cpu_s", "pid_source",
    "noisy", "noise", "energy", "energy_j_per_request", "energy_j_per_token", "energy_estimate",
)
JSON_COLUMNS = {"environment", "notes", "settings", "tags", "specs", "noise", "energy", "environment_end"}


def clean_row(row: dict) -> dict:
    """A stored row with pandas' NaN read back as None."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def _dicts(cur) -> list[dict]:
    return fetch_dicts(cur, JSON_COLUMNS)


# -- writes ------------------------------------------------------------------------------------
def runner_identity() -> dict:
    """This process as the runner of a run: PID, host and create time (so a reused PID is not taken for it)."""
    import os
    import socket

    import psutil
    return {"runner_pid": os.getpid(), "runner_host": socket.gethostname(),
            "runner_started": psutil.Process().create_time()}


@retrying
def create_run(run_id: str, *, prompt_set: str, prompt_set_hash: str, settings: dict, environment: dict,
               prompts: list[dict], note: str | None = None, device: str | None = None,
               specs: list[dict] | None = None) -> None:
    me = runner_identity()
    with connect() as con:
        con.execute(
            "INSERT INTO runs (run_id, created_at, status, prompt_set, prompt_set_hash, settings, environment, note, "
            "device, runner_pid, runner_host, runner_started, specs, resumed) "
            "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            [run_id, utc_now(), prompt_set, prompt_set_hash, to_json(settings), to_json(redact(environment)), redact(note),
             device or (environment or {}).get("device"), me["runner_pid"], me["runner_host"],
             me["runner_started"], to_json(specs)])
        con.executemany(
            "INSERT INTO run_prompts (run_id, prompt_id, position, text, tags) VALUES (?, ?, ?, ?, ?)",
            [[run_id, p["id"], i, p["text"], to_json(p.get("tags") or [])] for i, p in enumerate(prompts)])


@retrying
def reopen_run(run_id: str) -> None:
    """A resumed run: running again, by this process."""
    me = runner_identity()
    with connect() as con:
        con.execute("UPDATE runs SET status = 'running', finished_at = NULL, runner_pid = ?, runner_host = ?, "
                    "runner_started = ?, resumed = coalesce(resumed, 0) + 1 WHERE run_id = ?",
                    [me["runner_pid"], me["runner_host"], me["runner_started"], run_id])


def next_segment(run_id: str) -> int:
    """The sitting number for the next requests of a run (0 for a new run, +1 per resume)."""
    with connect() as con:
        (seg,) = con.execute("SELECT max(coalesce(segment, 0)) FROM requests WHERE run_id = ?", [run_id]).fetchone()
    return 0 if seg is None else int(seg) + 1


def _request_frame(requests: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{c: r.get(c) for c in REQUEST_COLUMNS} for r in requests], columns=list(REQUEST_COLUMNS))
    df["chunk_gaps_ms"] = [[] if g is None or (isinstance(g, float) and g != g) else list(map(float, g))
                           for g in df["chunk_gaps_ms"]]
    for c in ("segment", "chunk_count", "completion_tokens", "prompt_tokens", "round", "concurrency", "turn",
              "turn_position"):
        df[c] = df[c].astype("Int64")
    for c in ("connect_ms", "engine_wait_ms", "queue_ms", "ttft_ms", "e2e_ms", "tpot_ms", "start_offset_s",
              "end_offset_s", "run_start_s", "run_end_s"):
        df[c] = df[c].astype("float64")
    df["error"] = [redact(e) for e in df["error"]]
    df["warmup"] = df["warmup"].fillna(False).astype(bool)
    return df


def _put_requests(con, requests: list[dict]) -> None:
    """Insert request rows, replacing any stored row with the same request_id (same transaction)."""
    if not requests:
        return
    con.register("new_requests", _request_frame(requests))
    try:
        con.execute("DELETE FROM requests WHERE request_id IN (SELECT request_id FROM new_requests)")
        con.execute(f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}, created_at) "
                    f"SELECT {', '.join(REQUEST_COLUMNS)}, ? FROM new_requests", [utc_now()])
    finally:
        con.unregister("new_requests")


# -- the journal: each request row as it completes, outside the database --------------------------------
# Writing DuckDB costs tens of milliseconds of CPU (open, insert, checkpoint): during the measured window it
# would compete with the model for the cores. A JSON line appended to a file costs microseconds and is
# written to the OS at once, so a SIGKILL loses nothing that completed. A level's end stores its rows in
# the database; a run whose process died has its journal imported (``mark_stale_runs``), then removed.
# ``mark_stale_runs`` is the one step that settles dead runs: the CLI router runs it before a command that
# reads runs, the app before each page (ui.stale_runs), a new run at its start. Reads never write.

def journal_path(run_id: str):
    """Beside a local DuckDB file; for a team store (a DuckLake URL), in this machine's runtime folder, one
    folder per store: the journal is this machine's own, imported into the store it belongs to."""
    import hashlib
    from pathlib import Path
    from core.config import RUNTIME_DIR, db_path
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in run_id)
    db = str(db_path())
    if db.startswith("ducklake:"):
        folder = Path(RUNTIME_DIR) / "journals" / hashlib.sha256(db.encode()).hexdigest()[:16]
    else:
        folder = Path(db + ".journal")
    return folder / f"{safe}.jsonl"


def open_journal(run_id: str):
    """The run's journal, opened for appending (line-buffered text)."""
    path = journal_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a", encoding="utf-8", buffering=1)


def journal_line(row: dict) -> str:
    import json
    out = {c: row.get(c) for c in REQUEST_COLUMNS}
    out["error"] = redact(out.get("error"))      # the journal is on disk too: no key in it
    out["chunk_gaps_ms"] = [float(g) for g in (out["chunk_gaps_ms"] or [])]
    return json.dumps(out, ensure_ascii=False, default=str) + "\n"


def import_journal(run_id: str) -> int:
    """Store the journal's rows the database does not have (by request_id), then remove the journal."""
    import json
    path = journal_path(run_id)
    if not path.is_file():
        return 0
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:      # a line cut by the kill
            continue
    with connect() as con:
        have = {r[0] for r in con.execute("SELECT request_id FROM requests WHERE run_id = ?", [run_id]).fetchall()}
    new = {r["request_id"]: r for r in rows if r.get("request_id") and r["request_id"] not in have}
    _store_requests(list(new.values()))
    remove_journal(run_id)
    return len(new)


@retrying
def _store_requests(requests: list[dict]) -> None:
    with connect() as con:
        _put_requests(con, requests)


def remove_journal(run_id: str) -> None:
    try:
        journal_path(run_id).unlink()
    except OSError:
        pass


@retrying
def finish_run(run_id: str, status: str, note: str | None = None) -> None:
    with connect() as con:
        con.execute("UPDATE runs SET status = ?, finished_at = ?, note = coalesce(?, note) "
                    "WHERE run_id = ?", [status, utc_now(), redact(note), run_id])


@retrying
def set_environment_end(run_id: str, environment_end: dict) -> None:
    """The power and thermal state at the run's end (core.bench.conditions.environment.power_state)."""
    with connect() as con:
        con.execute("UPDATE runs SET environment_end = ? WHERE run_id = ?", [to_json(environment_end), run_id])


@retrying
def save_level(run_model: dict, requests: list[dict]) -> None:
    """One model x concurrency level: its run_models row (replaced) and its request rows (replaced by
    request_id: the rows written as each request completed get their final values), in one transaction."""
    rm = {c: run_model.get(c) for c in RUN_MODEL_COLUMNS}
    rm["error"], rm["endpoint"] = redact(rm["error"]), redact(rm["endpoint"])   # no key-shaped text is stored
    for c in ("environment", "notes", "noise", "energy"):
        rm[c] = to_json(redact(rm[c]))
    with connect() as con:
        con.execute("DELETE FROM run_models WHERE run_id = ? AND model = ? AND backend = ? AND concurrency = ?",
                    [rm["run_id"], rm["model"], rm["backend"], rm["concurrency"]])
        con.execute(f"INSERT INTO run_models ({', '.join(RUN_MODEL_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(RUN_MODEL_COLUMNS))})", [rm[c] for c in RUN_MODEL_COLUMNS])
        _put_requests(con, requests)


def _runner_alive(pid, host, started, this_host: str) -> bool | None:
    """True / False when this machine can tell; None for a runner on another host (or an old run)."""
    import psutil
    if pid is None or host != this_host:
        return None
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - float(started)) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


STALE_NOTE = "the process running it ended before the run finished"


@retrying
def mark_stale_runs(older_than_s: float = 24 * 3600) -> int:
    """Runs left 'running' by a process that is gone become 'interrupted' (their levels too), their journals
    imported. An explicit step (CLI router, app router, a run's start): no read calls it.

    A runner on this host is checked by PID (and create time); one on another host, or a run from before
    runners were recorded, only after ``older_than_s``."""
    import socket
    this_host = socket.gethostname()
    with connect() as con:
        running = con.execute(
            "SELECT run_id, runner_pid, runner_host, runner_started, "
            " created_at < ? - to_seconds(?) AS old FROM runs WHERE status = 'running'",
            [utc_now(), float(older_than_s)]).fetchall()
        stale = [run_id for run_id, pid, host, started, old in running
                 if (alive := _runner_alive(pid, host, started, this_host)) is False or (alive is None and old)]
        for run_id in stale:
            con.execute("UPDATE runs SET status = 'interrupted', note = coalesce(note, ?) WHERE run_id = ? "
                        "AND status = 'running'", [STALE_NOTE, run_id])
            con.execute("UPDATE run_models SET status = 'interrupted', error = coalesce(error, ?) "
                        "WHERE run_id = ? AND status = 'running'", [f"interrupted: {STALE_NOTE}", run_id])
    for run_id in stale:
        import_journal(run_id)     # the requests that completed before the process died
    return len(stale)


# -- reads -------------------------------------------------------------------------------------
def list_runs() -> list[dict]:
    """Every run, newest first, with its models and request counts. A read: it writes nothing (a run whose runner
    is gone reads 'interrupted' once ``mark_stale_runs`` ran: the CLI router and the app do, before any read)."""
    with connect() as con:
        return _dicts(con.execute(
            "SELECT r.run_id, r.created_at, r.finished_at, r.status, coalesce(r.device, 'unknown') AS device, "
            " r.prompt_set, r.prompt_set_hash, r.settings, "
            " (SELECT string_agg(DISTINCT m.label || ' [' || m.backend || ']', ', ') FROM run_models m "
            "   WHERE m.run_id = r.run_id) AS models, "
            " (SELECT count(*) FROM requests q WHERE q.run_id = r.run_id AND NOT q.warmup) AS requests, "
            " (SELECT count(*) FROM requests q WHERE q.run_id = r.run_id AND NOT q.warmup AND NOT q.ok) AS failed, "
            " (SELECT count(*) FROM requests q WHERE q.run_id = r.run_id AND q.ok AND NOT q.warmup) AS ok_requests, "
            " (SELECT count(DISTINCT m.model || '|' || m.backend) FROM run_models m WHERE m.run_id = r.run_id) "
            "   AS candidates, r.note "
            "FROM runs r ORDER BY r.created_at DESC, r.run_id DESC"))


_RUNS_BY_ID = ("SELECT run_id, created_at, finished_at, status, prompt_set, prompt_set_hash, settings, environment, "
               "       note, coalesce(device, 'unknown') AS device "
               "FROM runs WHERE list_contains(?, run_id) ORDER BY created_at, run_id")


def runs_by_id(run_ids: list[str]) -> list[dict]:
    """The run rows of these ids, oldest first, with their device label ('unknown' before devices existed)."""
    with connect() as con:
        return _dicts(con.execute(_RUNS_BY_ID, [list(run_ids)]))


def candidate_inputs(run_ids: list[str]) -> dict:
    """What the decision's candidate builder reads, in one transaction: {"runs", "models", "requests", "scored"}.

    runs: as ``runs_by_id``; models: run_models rows at each model's lowest concurrency level, ordered by
    (run_id, model, backend); requests: the measured (non-warm-up) requests of those levels as numeric numpy
    columns only (``level``: the index of their row in ``models``; ok, e2e_ms, ttft_ms, tpot_ms), sorted by
    level -- a million rows without a Python object per row; scored: the runs with any quality data
    (scores by people, a judge run, check results, pairwise verdicts): the others need no quality report.
    """
    ids = list(run_ids)
    with connect() as con:
        runs = _dicts(con.execute(_RUNS_BY_ID, [ids]))
        models = _dicts(con.execute(
            "SELECT run_id, model, backend, label, concurrency, status, error, license, disk_mb, load_s, peak_rss_mb, "
            "       throughput_tok_s, environment, notes, noisy, noise, energy_j_per_request, energy "
            "FROM run_models WHERE list_contains(?, run_id) "
            "QUALIFY row_number() OVER (PARTITION BY run_id, model, backend ORDER BY concurrency) = 1 "
            "ORDER BY run_id, model, backend", [ids]))
        reqs = con.execute(
            "WITH lvl AS (SELECT run_id, model, backend, min(concurrency) AS concurrency FROM run_models "
            "             WHERE list_contains(?, run_id) GROUP BY ALL), "
            "     num AS (SELECT *, (row_number() OVER (ORDER BY run_id, model, backend) - 1)::INTEGER AS level "
            "             FROM lvl) "
            "SELECT num.level, q.ok, q.e2e_ms, q.ttft_ms, q.tpot_ms "
            "FROM requests q JOIN num USING (run_id, model, backend, concurrency) "
            "WHERE NOT q.warmup ORDER BY num.level, q.prompt_id, q.round, q.request_id", [ids]).fetchnumpy()
        scored = {r[0] for r in con.execute(
            "SELECT run_id FROM human_scores WHERE list_contains($ids, run_id) "
            "UNION SELECT run_id FROM judge_runs WHERE list_contains($ids, run_id) "
            "UNION SELECT run_id FROM check_results WHERE list_contains($ids, run_id) "
            "UNION SELECT run_id FROM pairwise_verdicts WHERE list_contains($ids, run_id)", {"ids": ids}).fetchall()}
    return {"runs": runs, "models": models, "requests": reqs, "scored": scored}


def get_run(run_id: str) -> dict | None:
    """The run row with its prompts and run_models rows, or None. A read: it writes nothing (see ``list_runs``)."""
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
            status=m["status"] if m["status"] in ("ok", "interrupted") else "failed", error=m["error"], load=m))
    return out


def run_conditions(run_id: str) -> list[dict]:
    """Per model x concurrency level of a run: {model, backend, label, concurrency, noisy, noise_reason,
    others_cores, energy_j_per_request, energy_j_per_token, energy_source, energy_estimate, energy_reason}
    (None where unknown: a level stored before migration 013, or a failed one). For the decision's
    criterion "energy" (J per request, lower is better), its constraint ``energy_j<=X`` and its noisy flag."""
    run = get_run(run_id)
    out = []
    for m in (run or {}).get("models", []):
        noise, energy = m.get("noise") or {}, m.get("energy") or {}
        out.append({"model": m["model"], "backend": m["backend"], "label": m.get("label"),
                    "concurrency": m["concurrency"], "noisy": m.get("noisy"), "noise_reason": noise.get("reason"),
                    "others_cores": noise.get("others_cores"),
                    "energy_j_per_request": m.get("energy_j_per_request"),
                    "energy_j_per_token": m.get("energy_j_per_token"), "energy_source": energy.get("source"),
                    "energy_estimate": m.get("energy_estimate"), "energy_reason": energy.get("reason")})
    return out

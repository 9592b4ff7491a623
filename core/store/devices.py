"""Devices as a dimension: the label each run was recorded under (runs.device) and its profile (runs.environment)."""
from __future__ import annotations

from core.store.db import connect, fetch_dicts, from_json

PROFILE_KEYS = ("cpu", "cores_logical", "cores_physical", "ram_gb", "gpu", "npu", "os", "machine",
                "execution_providers", "packages")


def list_devices() -> list[dict]:
    """Every device label with its number of runs, last run time and the profile of its latest run."""
    with connect() as con:
        rows = fetch_dicts(con.execute(
            "SELECT coalesce(device, 'unknown') AS device, count(*) AS runs, max(created_at) AS last_run, "
            "       arg_max(environment, created_at) AS environment "
            "FROM runs GROUP BY ALL ORDER BY device"))
    for r in rows:
        env = from_json(r.pop("environment")) or {}
        r["profile"] = {k: env.get(k) for k in PROFILE_KEYS if k in env}
    return rows


def device_names() -> list[str]:
    return [r["device"] for r in list_devices()]


def models_on_devices(devices: list[str]) -> dict[str, list[str]]:
    """{model id or label: [devices it was benchmarked on]} restricted to the given devices."""
    with connect() as con:
        rows = con.execute(
            "SELECT DISTINCT m.model, m.label, coalesce(r.device, 'unknown') AS device "
            "FROM run_models m JOIN runs r USING (run_id) WHERE list_contains(?, coalesce(r.device, 'unknown')) "
            "ORDER BY device", [list(devices)]).fetchall()
    out: dict[str, list[str]] = {}
    for model, label, device in rows:
        for key in {model, label} - {None}:
            out.setdefault(key, [])
            if device not in out[key]:
                out[key].append(device)
    return out


def run_devices(run_ids: list[str]) -> dict[str, str]:
    """{run_id: device label} ('unknown' for runs recorded before devices existed)."""
    with connect() as con:
        return dict(con.execute("SELECT run_id, coalesce(device, 'unknown') FROM runs WHERE list_contains(?, run_id)",
                                [list(run_ids)]).fetchall())


def runs_on_devices(devices: list[str]) -> list[str]:
    """Ids of the runs recorded on these devices that have model rows, oldest first."""
    with connect() as con:
        return [r[0] for r in con.execute(
            "SELECT run_id FROM runs r WHERE list_contains(?, coalesce(device, 'unknown')) "
            "AND EXISTS (SELECT 1 FROM run_models m WHERE m.run_id = r.run_id) ORDER BY created_at, run_id",
            [list(devices)]).fetchall()]


def fleet_inputs(devices: list[str], run_ids: list[str] | None = None) -> dict:
    """Everything the fleet decision reads, in one transaction: {"run_ids", "runs", "models", "requests", "scored"}.

    run_ids: the given ones, else every run of the devices. runs: with their device; models: run_models rows at
    each model's lowest concurrency level, ordered by (run_id, model, backend); requests: measured requests as
    numeric numpy columns only (``level``: the index of their row in ``models``; ok, e2e_ms, ttft_ms, tpot_ms),
    sorted by level -- a million rows without a Python object per row; scored: runs with any quality data.
    """
    with connect() as con:
        if run_ids:
            ids = list(run_ids)
        else:
            ids = [r[0] for r in con.execute(
                "SELECT run_id FROM runs r WHERE list_contains(?, coalesce(device, 'unknown')) "
                "AND EXISTS (SELECT 1 FROM run_models m WHERE m.run_id = r.run_id) ORDER BY created_at, run_id",
                [list(devices)]).fetchall()]
        runs = fetch_dicts(con.execute(
            "SELECT run_id, created_at, status, coalesce(device, 'unknown') AS device FROM runs "
            "WHERE list_contains(?, run_id) ORDER BY created_at, run_id", [ids]))
        models = fetch_dicts(con.execute(
            "SELECT run_id, model, backend, label, concurrency, status, error, license, disk_mb, load_s, peak_rss_mb, "
            "       throughput_tok_s, environment, notes FROM run_models WHERE list_contains(?, run_id) "
            "QUALIFY row_number() OVER (PARTITION BY run_id, model, backend ORDER BY concurrency) = 1 "
            "ORDER BY run_id, model, backend", [ids]), {"environment", "notes"})
        reqs = con.execute(
            "WITH lvl AS (SELECT run_id, model, backend, min(concurrency) AS concurrency FROM run_models "
            "             WHERE list_contains(?, run_id) GROUP BY ALL), "
            "     num AS (SELECT *, (row_number() OVER (ORDER BY run_id, model, backend) - 1)::INTEGER AS level "
            "             FROM lvl) "
            "SELECT num.level, q.ok, q.e2e_ms, q.ttft_ms, q.tpot_ms "
            "FROM requests q JOIN num USING (run_id, model, backend, concurrency) "
            "WHERE NOT q.warmup ORDER BY num.level", [ids]).fetchnumpy()
        scored = _scored(con, ids)
    return {"run_ids": ids, "runs": runs, "models": models, "requests": reqs, "scored": scored}


def _scored(con, ids: list[str]) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT run_id FROM human_scores WHERE list_contains($ids, run_id) "
        "UNION SELECT run_id FROM judgements WHERE list_contains($ids, run_id) "
        "UNION SELECT run_id FROM check_results WHERE list_contains($ids, run_id) "
        "UNION SELECT run_id FROM pairwise_verdicts WHERE list_contains($ids, run_id)", {"ids": list(ids)}
    ).fetchall()}


def scored_runs(run_ids: list[str]) -> set[str]:
    """The runs that have any quality data (human scores, judgements, check results): the others need no report."""
    with connect() as con:
        return _scored(con, list(run_ids))

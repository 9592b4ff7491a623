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

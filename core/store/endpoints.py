"""SQL for the OpenAI-compatible endpoints the user added (the key's env var NAME only)."""
from __future__ import annotations

from core.store.db import connect, retrying, utc_now


@retrying
def add_endpoint(name: str, base_url: str, api_key_env: str | None) -> None:
    with connect() as con:
        con.execute(
            "MERGE INTO endpoints USING (SELECT ? AS name, ? AS base_url, ? AS api_key_env) s ON endpoints.name = s.name "
            "WHEN MATCHED THEN UPDATE SET base_url = s.base_url, api_key_env = s.api_key_env "
            "WHEN NOT MATCHED THEN INSERT (name, base_url, api_key_env, added_at) "
            "VALUES (s.name, s.base_url, s.api_key_env, ?)",
            [name, base_url, api_key_env, utc_now()],
        )


@retrying
def remove_endpoint(name: str) -> bool:
    with connect() as con:
        found = con.execute("SELECT count(*) FROM endpoints WHERE name = ?", [name]).fetchone()[0]
        con.execute("DELETE FROM endpoints WHERE name = ?", [name])
        return bool(found)


def list_endpoints() -> list[dict]:
    with connect() as con:
        rows = con.execute("SELECT name, base_url, api_key_env FROM endpoints ORDER BY name").fetchall()
    return [{"name": n, "base_url": u, "api_key_env": k} for n, u, k in rows]


def get_setting(key: str, default: str | None = None) -> str | None:
    with connect() as con:
        row = con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


@retrying
def set_setting(key: str, value: str) -> None:
    with connect() as con:
        con.execute(
            "MERGE INTO settings USING (SELECT ? AS key, ? AS value) s ON settings.key = s.key "
            "WHEN MATCHED THEN UPDATE SET value = s.value WHEN NOT MATCHED THEN INSERT (key, value) VALUES (s.key, s.value)",
            [key, value],
        )

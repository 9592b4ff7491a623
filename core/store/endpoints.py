"""SQL for the OpenAI-compatible endpoints the user added (the key's env var NAME only)."""
from __future__ import annotations

from core.store.db import connect


def add_endpoint(name: str, base_url: str, api_key_env: str | None) -> None:
    with connect() as con:
        con.execute(
            "INSERT INTO endpoints (name, base_url, api_key_env) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET base_url = excluded.base_url, api_key_env = excluded.api_key_env",
            [name, base_url, api_key_env],
        )


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


def set_setting(key: str, value: str) -> None:
    with connect() as con:
        con.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )

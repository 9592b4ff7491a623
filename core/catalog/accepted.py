"""The endpoints this machine accepted: where a campaign may send requests, and which key variable (if any)
goes with each. Kept in a local file beside the device label (``core.config.cache_dir``), never in a store: a
plan or a shared store names endpoints, but only this machine's own record decides whether a request goes
there and whether a key goes with it.

An endpoint is accepted on this machine by typing it here: ``endpoint add NAME URL [--api-key-env VAR]``,
``campaign create NAME --endpoint URL [--api-key-env VAR]``, or ``campaign run NAME --accept-endpoints`` after
the plan's endpoints were shown (accepted without a key: a key goes only to an endpoint registered with its
variable by ``endpoint add``).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from core.errors import UserError

FILE_NAME = "accepted-endpoints.json"


def accepted_file() -> Path:
    from core.config import cache_dir
    return cache_dir() / FILE_NAME


def accepted() -> dict[str, dict]:
    """{base URL: {"api_key_env": NAME | None}} this machine accepted; a missing or damaged file is {} (nothing
    accepted), and an entry whose variable name is not a name loses its variable."""
    from core.output import ENV_NAME_RE, looks_like_key
    try:
        data = json.loads(accepted_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for url, entry in data.items():
        if not isinstance(url, str) or not isinstance(entry, dict):
            continue
        env = entry.get("api_key_env")
        ok = isinstance(env, str) and ENV_NAME_RE.match(env) and not looks_like_key(env)
        out[url] = {"api_key_env": env if ok else None}
    return out


def accept(base: str, api_key_env: str | None = None) -> str:
    """Record ``base`` (a base URL as ``core.catalog.endpoints.normalize_base_url`` gives it, as plans hold them)
    as accepted on this machine, with the key variable typed here (None: no key goes there)."""
    from core.output import check_env_name
    env = check_env_name(api_key_env) if api_key_env and api_key_env.strip() else None
    items = accepted()
    items[base] = {"api_key_env": env}
    path = accepted_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".accepted-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(items, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot record the accepted endpoint in {path}: {exc.strerror or exc}") from exc
    return base


def pending(urls) -> list[str]:
    """The base URLs (in order, once each) this machine has not accepted."""
    have = accepted()
    return [u for u in dict.fromkeys(urls) if u not in have]


def key_env(base: str) -> str | None:
    """The key variable this machine registered for the base URL (None: no key is sent). UserError when the
    endpoint is not accepted here: nothing may be sent to it."""
    entry = accepted().get(base)
    if entry is None:
        raise UserError(f"endpoint {base} is not accepted on this machine")
    return entry["api_key_env"]

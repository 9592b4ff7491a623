"""OpenAI-compatible endpoints: validation, the key from the environment, and /v1/models."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from core.errors import UserError
from core.config import limit
from core.output import check_env_name, check_url, parse_json_strict, redact
from core.store import endpoints as store

SEED_ENDPOINT_ENV = "FOUNDRY_LOCAL_ENDPOINT"  # the workshop's way of naming Foundry Local's service
MAX_MODELS_BODY = 10 * 1024 * 1024           # a /models answer larger than this is refused


def normalize_base_url(url: str) -> str:
    """`http://host:port` or `.../v1` -> the base URL ending in /v1 (what the openai client expects)."""
    url = (url or "").strip().rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(f"endpoint URL {redact(url)!r} is not an http(s) URL")
    check_url(url)   # no user:pass@, ?api-key=, ?key=, ?token=, ?sig= ...
    if not parsed.path.rstrip("/").endswith("/v1") and "/openai" not in parsed.path:
        url = url + "/v1"
    return url


def add(name: str, base_url: str, api_key_env: str | None = None) -> dict:
    name = (name or "").strip()
    if not name:
        raise UserError("an endpoint needs a name")
    if api_key_env and api_key_env.strip():
        api_key_env = check_env_name(api_key_env)
    url = normalize_base_url(base_url)
    store.add_endpoint(name, url, api_key_env or None)
    return {"name": name, "base_url": url, "api_key_env": api_key_env or None}


def remove(name: str) -> None:
    if not store.remove_endpoint(name):
        raise UserError(f"no endpoint named {name!r}")


def configured() -> list[dict]:
    """The user's endpoints plus FOUNDRY_LOCAL_ENDPOINT when set."""
    items = store.list_endpoints()
    seed = os.environ.get(SEED_ENDPOINT_ENV, "").strip()
    if seed and not any(e["base_url"] == normalize_base_url(seed) for e in items):
        items.append({"name": "foundry-local-service", "base_url": normalize_base_url(seed), "api_key_env": None})
    return items


def api_key(api_key_env: str | None) -> str:
    """The key read from the named env var at call time ("not-needed" when none is named)."""
    if not api_key_env:
        return "not-needed"
    api_key_env = check_env_name(api_key_env)   # a key given as the name is refused, never echoed
    value = os.environ.get(api_key_env)
    if not value:
        raise UserError(f"environment variable {api_key_env} (the API key for this endpoint) is not set")
    return value


def fetch_models(base_url: str, api_key_env: str | None = None, timeout: float = 3.0) -> list[dict]:
    """GET {base_url}/models. UserError (one line) when unreachable or not OpenAI-shaped."""
    headers = {"Accept": "application/json"}
    if api_key_env and os.environ.get(api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
        headers["api-key"] = os.environ[api_key_env]  # Azure OpenAI
    req = urllib.request.Request(base_url.rstrip("/") + "/models", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read(MAX_MODELS_BODY + 1)
    except urllib.error.HTTPError as exc:
        raise UserError(f"endpoint {base_url} answered HTTP {exc.code} to /models") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"endpoint {base_url} unreachable: {reason}") from exc
    if len(body) > MAX_MODELS_BODY:
        raise UserError(f"endpoint {base_url} /models answered more than {MAX_MODELS_BODY // 1024 // 1024} MB")
    try:
        data = parse_json_strict(body.decode("utf-8"), limit("SLM_MAX_JSON_DEPTH"))
        items = data["data"] if isinstance(data, dict) else data
        return [m for m in items if isinstance(m, dict) and isinstance(m.get("id"), str) and 0 < len(m["id"]) <= 512]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"endpoint {base_url} /models did not return an OpenAI model list") from exc


def probe_all(timeout: float = 3.0) -> list[dict]:
    """Each configured endpoint with status ("ok" | "unreachable"), its models and a one-line message."""
    eps = configured()

    def probe(ep: dict) -> dict:
        try:
            return {**ep, "status": "ok", "models": fetch_models(ep["base_url"], ep["api_key_env"], timeout), "message": None}
        except UserError as exc:
            return {**ep, "status": "unreachable", "models": [], "message": exc.one_line()}

    if not eps:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(eps))) as pool:
        return list(pool.map(probe, eps))

"""OpenAI-compatible endpoints: validation, the key from the environment, and /v1/models."""
from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse, urlsplit

from core.errors import UserError, one_line, remember_secret
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
    from core.catalog.accepted import accept
    accept(url, api_key_env or None)     # registered here: this machine may send to it, with this variable
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
    """The key read from the named env var at call time ("not-needed" when none is named). The name is checked
    on every use (a stored name too: a bundle or an old file may hold anything), and a value that could not
    travel in an HTTP header (control characters, non-Latin-1) is refused, never echoed."""
    if not api_key_env:
        return "not-needed"
    api_key_env = check_env_name(api_key_env)   # a key given as the name is refused, never echoed
    value = os.environ.get(api_key_env)
    if not value:
        raise UserError(f"environment variable {api_key_env} (the API key for this endpoint) is not set")
    if any(ord(c) < 0x21 or ord(c) == 0x7F or ord(c) > 0xFF for c in value):
        raise UserError(f"environment variable {api_key_env} does not hold a usable API key "
                        "(spaces, control or non-Latin-1 characters)")
    remember_secret(value)          # masked by value in every error, stored text and export from now on
    return value


def auth_headers(api_key_env: str | None) -> dict[str, str]:
    """The headers that carry the key (Authorization: Bearer, and api-key for Azure OpenAI); {} without one."""
    if not api_key_env:
        return {}
    key = api_key(api_key_env)
    return {"Authorization": f"Bearer {key}", "api-key": key}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port filled in for http/https: two URLs of one origin share it."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


class _Refused(Exception):
    """A redirect to another origin (or from https to http): not followed, the key never goes there."""


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = urllib.parse.urljoin(req.full_url, newurl)
        if origin(new) != origin(req.full_url):
            raise _Refused(f"it redirects to another origin ({redact(new)[:120]}): not followed, the key is "
                           "never sent there; give the endpoint's final URL")
        return super().redirect_request(req, fp, code, msg, headers, new)


class _Deadline:
    """One deadline for a whole call: at the end every socket it opened is shut, however the server drips."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self.socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def add(self, sock) -> None:
        with self._lock:
            self.socks.append(sock)
            late = self.expired
        if late:
            self._expire()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            socks = list(self.socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def opener(self) -> urllib.request.OpenerDirector:
        deadline = self

        class Http(http.client.HTTPConnection):
            def connect(self):
                super().connect()
                deadline.add(self.sock)

        class Https(http.client.HTTPSConnection):
            def connect(self):
                super().connect()
                deadline.add(self.sock)

        class HttpHandler(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(Http, req)

        class HttpsHandler(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(Https, req, context=ssl.create_default_context())

        return urllib.request.build_opener(HttpHandler, HttpsHandler, _SameOriginRedirects)


def fetch_models(base_url: str, api_key_env: str | None = None, timeout: float = 3.0) -> list[dict]:
    """GET {base_url}/models within ``timeout`` seconds overall. UserError (one line) when unreachable, slower,
    redirected to another origin, or not OpenAI-shaped. The URL and the key's variable name are checked here,
    on every use, before anything is sent."""
    parsed = urlsplit(base_url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(f"endpoint URL {redact(base_url)!r} is not an http(s) URL")
    check_url(base_url)
    headers = {"Accept": "application/json", **auth_headers(api_key_env)}
    req = urllib.request.Request(base_url.rstrip("/") + "/models", headers=headers)
    label = redact(base_url)
    with _Deadline(timeout) as deadline:
        try:
            with deadline.opener().open(req, timeout=timeout) as resp:
                parts, size = [], 0
                while size <= MAX_MODELS_BODY:
                    block = resp.read1(65536)
                    if not block:
                        break
                    parts.append(block)
                    size += len(block)
                body = b"".join(parts)
        except _Refused as exc:
            raise UserError(f"endpoint {label} refused: {exc}") from None
        except urllib.error.HTTPError as exc:
            raise UserError(f"endpoint {label} answered HTTP {exc.code} to /models") from exc
        except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise UserError(f"endpoint {label} did not answer /models within {timeout:g} s") from None
            reason = getattr(exc, "reason", exc)
            raise UserError(f"endpoint {label} unreachable: {one_line(reason, 200)}") from exc
        if deadline.expired:
            raise UserError(f"endpoint {label} did not answer /models within {timeout:g} s")
    if len(body) > MAX_MODELS_BODY:
        raise UserError(f"endpoint {label} /models answered more than {MAX_MODELS_BODY // 1024 // 1024} MB")
    try:
        data = parse_json_strict(body.decode("utf-8"), limit("SLM_MAX_JSON_DEPTH"))
        items = data["data"] if isinstance(data, dict) else data
        return [m for m in items if isinstance(m, dict) and isinstance(m.get("id"), str) and 0 < len(m["id"]) <= 512]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"endpoint {label} /models did not return an OpenAI model list") from exc


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

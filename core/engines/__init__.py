"""Engines: the three ways a prompt reaches a model, behind one small interface.

An engine only *stamps times* (``time.perf_counter()``) and copies what the runtime said into a
``RequestRecord``; it computes no statistic. Every number is derived from these records in
``core.metrics``.

Backends:
- ``"foundry"``: Foundry Local in-process, one worker process per model (``core.engines.foundry``).
- ``"openai"``: any OpenAI-compatible HTTP endpoint (``core.engines.http``).
- ``"llamacpp"``: llama-cpp-python's OpenAI server, started and stopped by the app on a GGUF
  (``core.engines.llamacpp``).

``chat_once(...)`` is the one-call helper for everything that is not a benchmark (the LLM judge).
"""
from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from core.errors import UserError

BACKENDS = ("foundry", "openai", "llamacpp")
TOKEN_SOURCES = ("usage", "tokenizer", "chunks")


@dataclass
class RequestOptions:
    """What one request asks for (the same for every engine)."""
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = 0
    timeout_s: float = 120.0
    stream: bool = True
    json_schema: dict | None = None


@dataclass
class RequestRecord:
    """Raw facts about one request: timestamps (perf_counter seconds) and what the runtime returned.

    Filled by an engine; nothing here is derived. ``None`` means "did not happen / not known".
    """
    queued_at: float | None = None          # became eligible (waiting for a concurrency slot from here)
    start: float | None = None              # just before the request left the client
    first_token_at: float | None = None     # first chunk carrying output text
    end: float | None = None                # finish reason / [DONE] / end of body
    chunk_times: list[float] = field(default_factory=list)   # each chunk carrying output text
    text_parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    usage_completion_tokens: int | None = None   # from the runtime's usage, when it sent one
    tokenizer_completion_tokens: int | None = None
    error: str | None = None
    raw: Any = None                          # last JSON object seen (chat_once only)

    @property
    def output_text(self) -> str:
        return "".join(self.text_parts)

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = " ".join(str(message).split())[:500]


@dataclass
class LoadInfo:
    """What opening an engine measured (None where unknown; memory never guessed)."""
    load_s: float | None = None
    rss_before_mb: float | None = None
    rss_after_load_mb: float | None = None
    model_version: str | None = None
    execution_provider: str | None = None
    pid: int | None = None
    runtime: dict = field(default_factory=dict)   # runtime/SDK versions for the environment record
    notes: list[str] = field(default_factory=list)


class EngineDied(Exception):
    """The process running the model went away (killed, crashed, out of memory)."""


class Engine:
    """Base class. Subclasses implement ``open`` and either ``arequest`` (async) or ``request_sync``."""

    backend: str = ""
    is_async: bool = False

    def __init__(self, model: str):
        self.model = model
        self.count_tokens: Callable[[str], int] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> LoadInfo:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def alive(self) -> bool:
        """False once the process that serves the model is gone (a crash, a kill). Remote: True."""
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests ---------------------------------------------------------------------------
    def request_sync(self, messages: list[dict], opts: RequestOptions, rec: RequestRecord) -> None:
        raise NotImplementedError

    async def arequest(self, messages: list[dict], opts: RequestOptions, rec: RequestRecord) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.request_sync, messages, opts, rec)

    def run_one(self, messages: list[dict], opts: RequestOptions) -> RequestRecord:
        """One request, synchronously (chat_once and tests)."""
        rec = RequestRecord()
        if self.is_async:
            asyncio.run(self.arequest(messages, opts, rec))
        else:
            self.request_sync(messages, opts, rec)
        return rec

    def prepare_level(self, concurrency: int) -> None:
        """Called before each concurrency level."""

    def finish_level(self) -> None:
        """Called at the end of each level, inside its event loop (HTTP engines close their connections)."""

    # -- the model's process -----------------------------------------------------------------
    def pid(self) -> int | None:
        return None

    def process_stats(self) -> dict | None:
        """{"rss_mb","peak_rss_mb","cpu_s"} of the process that runs the model, or None if unknown."""
        pid = self.pid()
        return process_stats(pid) if pid else None

    def supports_concurrency(self) -> bool:
        return True


def process_stats(pid: int) -> dict | None:
    """RSS, peak RSS (VmHWM) and CPU seconds (user+system) of a process; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    out = {"rss_mb": None, "peak_rss_mb": None, "cpu_s": None}
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            out["rss_mb"] = int(line.split()[1]) / 1024.0
        elif line.startswith("VmHWM:"):
            out["peak_rss_mb"] = int(line.split()[1]) / 1024.0
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return out


def make_engine(backend: str, model: str, *, endpoint: str | None = None, api_key_env: str | None = None,
                model_row: dict | None = None, **kwargs) -> Engine:
    """The engine for one model. ``model_row`` is a row of ``core.models.list_models()`` when known."""
    if backend == "openai":
        from core.engines.http import HttpEngine
        if not endpoint:
            raise UserError(f"model {model!r}: an OpenAI-compatible engine needs an endpoint URL")
        return HttpEngine(model, endpoint, api_key_env=api_key_env, **kwargs)
    if backend == "llamacpp":
        from core.engines.llamacpp import LlamaCppEngine
        path = (model_row or {}).get("path") or model
        return LlamaCppEngine(path, **kwargs)
    if backend == "foundry":
        from core.engines.foundry import FoundryEngine
        return FoundryEngine(model, model_row=model_row)
    raise UserError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")


@dataclass
class ChatResult:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    token_count_source: str | None
    raw: Any = None


def completion_tokens_of(rec: RequestRecord, chunk_count: int | None = None) -> tuple[int | None, str | None]:
    """Completion tokens and their source: usage, else tokenizer, else chunks (metrics.md)."""
    if rec.usage_completion_tokens is not None:
        return rec.usage_completion_tokens, "usage"
    if rec.tokenizer_completion_tokens is not None:
        return rec.tokenizer_completion_tokens, "tokenizer"
    n = len(rec.chunk_times) if chunk_count is None else chunk_count
    if n:
        return n, "chunks"
    return None, None


_open_engines: dict[tuple, tuple[Engine, "threading.Lock"]] = {}
_open_lock = threading.Lock()


def _engine_for(backend: str, model: str, endpoint: str | None, api_key_env: str | None):
    key = (backend, model, endpoint, api_key_env)
    with _open_lock:
        hit = _open_engines.get(key)
        if hit is not None:
            return hit
        engine = make_engine(backend, model, endpoint=endpoint, api_key_env=api_key_env)
        try:
            engine.open()
        except BaseException:
            engine.close()
            raise
        _open_engines[key] = hit = (engine, threading.Lock())
        return hit


def _drop_engine(backend: str, model: str, endpoint: str | None, api_key_env: str | None) -> None:
    with _open_lock:
        hit = _open_engines.pop((backend, model, endpoint, api_key_env), None)
    if hit is not None:
        hit[0].close()


def close_engines() -> None:
    """Stop every engine ``chat_once`` kept open (worker processes, llama.cpp servers)."""
    with _open_lock:
        items = list(_open_engines.values())
        _open_engines.clear()
    for engine, _ in items:
        try:
            engine.close()
        except Exception:
            pass


atexit.register(close_engines)


def chat_once(backend: str, model: str, messages: list[dict], *, endpoint: str | None = None,
              api_key_env: str | None = None, temperature: float = 0.0, max_tokens: int = 256, seed: int = 0,
              json_schema: dict | None = None, timeout: float = 120.0, keep_open: bool = True) -> ChatResult:
    """One chat call outside a benchmark (the LLM judge uses it).

    ``backend``: "foundry" (``model`` = id or alias of a Foundry Local model), "openai" (needs
    ``endpoint``; the API key is read from the env var ``api_key_env`` names) or "llamacpp" (``model`` =
    a GGUF path, or the starter's alias). ``json_schema`` is sent as ``response_format`` json_schema to
    HTTP endpoints (asked again without it if the server rejects it with 400/422) and ignored by
    Foundry Local and llama.cpp here. A failed call raises ``UserError`` with one line.

    ``keep_open`` (default): the engine (a Foundry worker process with the model loaded, a llama.cpp
    server) stays open for the next call with the same model; ``close_engines()`` stops them (also
    done at exit). Calls on one engine are serialized.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    if backend == "llamacpp":
        from core.engines.llamacpp import resolve_gguf
        model = resolve_gguf(model)
    elif backend == "foundry":
        model = _foundry_id(model)
    opts = RequestOptions(temperature=temperature, max_tokens=max_tokens, seed=seed, timeout_s=timeout,
                          stream=backend != "openai",   # HTTP: one JSON body, usage always there
                          json_schema=json_schema if backend == "openai" else None)
    engine, lock = _engine_for(backend, model, endpoint, api_key_env)
    try:
        with lock:
            rec = engine.run_one(messages, opts)
            if rec.error is None and rec.usage_completion_tokens is None and engine.count_tokens and rec.text_parts:
                rec.tokenizer_completion_tokens = engine.count_tokens(rec.output_text)
    except EngineDied as exc:
        _drop_engine(backend, model, endpoint, api_key_env)
        raise UserError(f"{backend} model {model!r} stopped: {exc}") from exc
    finally:
        if not keep_open:
            _drop_engine(backend, model, endpoint, api_key_env)
    if rec.error:
        raise UserError(f"{backend} model {model!r}: {rec.error}")
    tokens, source = completion_tokens_of(rec)
    return ChatResult(text=rec.output_text, finish_reason=rec.finish_reason, prompt_tokens=rec.prompt_tokens,
                      completion_tokens=tokens, token_count_source=source, raw=rec.raw)


def _foundry_id(model: str) -> str:
    """A Foundry Local model id from an id or alias (unchanged when it already looks like an id)."""
    if ":" in model:
        return model
    try:
        from core.models import resolve_model
        return resolve_model(model, backend="foundry")["id"]
    except UserError:
        raise
    except Exception:
        return model


def now() -> float:
    return time.perf_counter()

"""One chat call outside a benchmark (`chat_once`; the LLM judge uses it), each engine's form of structured
output (`engine_constraint`), and the engines it keeps open between calls."""
from __future__ import annotations

import atexit
import threading

from core.engines.base import BACKENDS, ChatResult, Engine, EngineDied, RequestOptions
from core.metrics import completion_tokens_of
from core.errors import UserError
from core.engines.factory import make_engine


_open_engines: dict[tuple, tuple[Engine, "threading.Lock"]] = {}
_open_lock = threading.Lock()
_last_used: dict[tuple, float] = {}


def open_engines() -> list[dict]:
    """The engines ``chat_once`` keeps open (the judge's models and servers): key, engine, idle seconds."""
    import time
    now = time.monotonic()
    with _open_lock:
        return [{"key": key, "engine": engine, "idle_s": now - _last_used.get(key, now)}
                for key, (engine, _) in _open_engines.items()]


def close_open_engine(key: tuple) -> None:
    """Stop one engine ``chat_once`` kept open (unless a call is using it right now)."""
    with _open_lock:
        hit = _open_engines.get(key)
        if hit is None or hit[1].locked():
            return
        _open_engines.pop(key, None)
        _last_used.pop(key, None)
    hit[0].close()


def _engine_for(backend: str, model: str, endpoint: str | None, api_key_env: str | None):
    import time
    key = (backend, model, endpoint, api_key_env)
    with _open_lock:
        _last_used[key] = time.monotonic()
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


FALLBACK_STATUSES = ("HTTP 400", "HTTP 422", "HTTP 500")   # a server that rejects the structured-output form
STRUCTURED_ERROR = "structured output"                      # the Foundry worker's prefix for a rejected grammar


def engine_constraint(backend: str, json_schema: dict | None, grammar: str | None) -> tuple[dict | None, str | None]:
    """A JSON schema or a Lark grammar as this engine's request takes it: (response_format, grammar).

    - llama.cpp server (llama-cpp-python): ``{"type": "json_object", "schema": ...}``; it answers HTTP
      500 to ``json_schema``.
    - OpenAI-compatible endpoints: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``.
    - Foundry Local in-process: a Lark grammar (its ``json_schema`` fails natively in SDK 2.2.1).
    """
    if backend == "llamacpp":
        return ({"type": "json_object", "schema": json_schema} if json_schema is not None else None), None
    if backend == "openai":
        if json_schema is None:
            return None, None
        return {"type": "json_schema", "json_schema": {"name": str(json_schema.get("title") or "answer"),
                                                       "schema": json_schema, "strict": True}}, None
    return None, grammar


def chat_once(backend: str, model: str, messages: list[dict], *, endpoint: str | None = None,
              api_key_env: str | None = None, temperature: float = 0.0, max_tokens: int = 256, seed: int = 0,
              json_schema: dict | None = None, grammar: str | None = None, timeout: float = 120.0,
              keep_open: bool = True) -> ChatResult:
    """One chat call outside a benchmark (the LLM judge uses it).

    ``backend``: "foundry" (``model`` = id or alias of a Foundry Local model), "openai" (needs
    ``endpoint``; the API key is read from the env var ``api_key_env`` names) or "llamacpp" (``model`` =
    a GGUF path, or the starter's alias). Structured output goes in each engine's own form
    (``engine_constraint``): ``json_schema`` to HTTP engines, ``grammar`` (Lark) to Foundry Local. When the
    engine rejects it (HTTP 400/422/500, or the worker's grammar error) the call is made again without
    it, and ``ChatResult.constrained`` is False. A failed call raises ``UserError`` with one line.

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
    response_format, grammar = engine_constraint(backend, json_schema, grammar)
    opts = RequestOptions(temperature=temperature, max_tokens=max_tokens, seed=seed, timeout_s=timeout,
                          stream=backend != "openai",   # HTTP: one JSON body, usage always there
                          response_format=response_format, grammar=grammar)
    constrained = response_format is not None or grammar is not None
    engine, lock = _engine_for(backend, model, endpoint, api_key_env)
    try:
        with lock:
            rec = engine.run_one(messages, opts)
            if constrained and rec.error and (rec.error.startswith(FALLBACK_STATUSES) or STRUCTURED_ERROR in rec.error):
                # the engine has no (or another) structured output: ask again without it
                from dataclasses import replace
                constrained = False
                rec = engine.run_one(messages, replace(opts, response_format=None, grammar=None))
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
                      completion_tokens=tokens, token_count_source=source, raw=rec.raw, constrained=constrained)


def _foundry_id(model: str) -> str:
    """A Foundry Local model id from an id or alias (unchanged when it already looks like an id)."""
    if ":" in model:
        return model
    try:
        from core.catalog.models import resolve_model
        return resolve_model(model, backend="foundry")["id"]
    except UserError:
        raise
    except Exception:
        return model


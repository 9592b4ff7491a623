"""Engines: the three ways a prompt reaches a model, behind one small interface.

An engine only *stamps times* (``time.perf_counter()``) and copies what the runtime said into a
``RequestRecord``; it computes no statistic. Every number is derived from these records in
``core.metrics``.

Backends:
- ``"foundry"``: Foundry Local in-process, one worker process per model (``core.engines.foundry``).
- ``"openai"``: any OpenAI-compatible HTTP endpoint (``core.engines.http``).
- ``"llamacpp"``: llama-cpp-python's OpenAI server, started and stopped by the app on a GGUF
  (``core.engines.llamacpp``).

``factory``: `make_engine` (a backend and a model) and `open_engine` (a benchmark's model spec, at a context
length); ``chat``: `chat_once`, the one-call helper for everything that is not a benchmark (the LLM judge).
"""
from core.engines.base import (  # noqa: F401  (re-exported: the engines' shared types)
    BACKENDS, TOKEN_SOURCES, ChatResult, Engine, EngineDied, LoadInfo, RequestOptions, RequestRecord,
    process_stats,
)
from core.engines.chat import chat_once, close_engines, engine_constraint  # noqa: F401
from core.engines.factory import make_engine, open_engine  # noqa: F401
